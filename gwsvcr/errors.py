"""The base of every error gwsvcr raises on purpose: a user-facing message, never a traceback.

Each error is a :class:`GwsvcrError` named for its cause and carries what it is about, as httpx's exceptions carry
their request. By cause, and where each is declared:

* input that cannot be used, named with its file, line or option: ``CassetteError`` (every problem as
  ``FILE:LINE``; gwsvcr.cassette), ``TooDeep`` (gwsvcr.cassette.emit), ``CassetteExists`` (gwsvcr.record.modes),
  ``RedactionError`` (gwsvcr.record.privacy), ``HarError`` (gwsvcr.tools.har), ``OptionProblems`` (one sentence per
  option; gwsvcr.options), ``FaultError`` (gwsvcr.replay.faults), ``MountError`` (gwsvcr.service), ``PlanError``
  (its cassette's ``path``; gwsvcr.verify.plan), ``LoadSettingsError`` (gwsvcr.load.settings); those that were
  ``ValueError`` still are;
* a server that gave no usable reply, each with its ``request``: ``HttpFailure`` and its causes ``Unreachable``
  (``ConnectTimeout``), ``TimedOut``, ``Refused`` (its ``status``), ``Dropped``, ``NotHttp`` (gwsvcr.client.target),
  ``UpgradeRefused`` (gwsvcr.client.websocket), ``NotBayeux`` (its ``reply``; gwsvcr.client.bayeux); what verify and
  load make of them: ``VerifyError`` (its ``exit_code``; gwsvcr.verify.driver), ``LoadFailure`` (gwsvcr.load.user);
* gwsvcr's own serving process: ``NotListening`` (gwsvcr.served), ``ServiceError`` and ``ReplayMiss``
  (gwsvcr.api).

What the standard library or a parser raises (``OSError``, ``TimeoutError``, ``yaml.YAMLError``) is translated into
one of these once, where gwsvcr meets it.
"""

from __future__ import annotations

__all__ = ["GwsvcrError"]


class GwsvcrError(Exception):
    """Bad input or a failed operation, with a message that names the file, line or request and what to do."""
