"""Recording: completed exchanges become cassette documents, with sessions kept apart, the causes and delays of
pushed events, and secrets redacted before anything reaches disk.

Modules: ``recording`` (sessions, causes, WebSocket frame pairing), ``modes`` (record modes: what recording does
with an existing cassette), ``redact`` (secrets, at record time and after), ``privacy`` (the personal-data policy of
``gwsvcr redact --pii``).
"""
