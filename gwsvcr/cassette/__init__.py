"""Cassette format v1: the one package that owns its schema, loading, validation and writing.

A cassette is a YAML stream that a person can read and review in a diff:

* the first document is the header (``gwsvcr: 1``, when and against what it was recorded, the redaction rules);
* every further document is one HTTP exchange, written append-only as soon as its reply completed, so a writer
  killed at any moment leaves a file that loads (at most the exchange in flight is lost);
* an ``episode`` document starts a later recording appended to the same file (record mode new_episodes);
  ``start`` times count from the beginning of their episode.

A body the recorder did not keep (larger than ``--max-body``) is written as ``omitted: {size, sha256}`` in place
of a body field; the header's ``match:`` section says how replay compares REST requests (``ignore_query``,
``match_headers``, ``json_ignore``). Both are optional: a cassette without them is read as before.

CometD exchanges (a JSON array of Bayeux messages) keep ``messages`` instead of a plain ``json`` body; every message
of a reply is its own item and carries what replay needs: an event's cause (the exchange number of the last client
request whose reply completed before the event was delivered) and its delay after that reply, a connect's hold.

Security: documents are loaded with PyYAML's *safe* loader only: a YAML tag outside the standard ones is an error,
never code. Parsed documents are cached as JSON (never pickle), keyed by the SHA-256 of the file.

Modules: ``model`` (the dataclasses), ``load`` (safe reading: bytes, alias checks, the parse cache; ``load`` and
``validate``), ``documents`` (the YAML documents and their line map), ``schema`` (the schema check that builds the
model), ``write`` (the append-only writer and whole saves), ``atomic`` (files replaced in one step), ``cache`` (the
parse cache), ``loaded`` (loaded cassettes kept for their next use), ``emit`` (the YAML emitter), ``repair``
(salvaging a damaged file).
"""

from gwsvcr.cassette.atomic import write_atomically
from gwsvcr.cassette.load import load, validate
from gwsvcr.cassette.loaded import CassetteCache
from gwsvcr.cassette.model import (
    BODY_KINDS,
    CAUSE_RULES,
    MATCH_KEYS,
    PLACEHOLDER,
    VERSION,
    Cassette,
    CassetteError,
    Encoded,
    Episode,
    Exchange,
    Header,
    HttpMessage,
    Mark,
    Omitted,
    Problem,
    ReplyItem,
    Request,
    Response,
    Severity,
    json_bytes,
    json_copy,
    now_iso,
)
from gwsvcr.cassette.write import (
    CassetteWriter,
    dump_document,
    exchange_to_doc,
    header_to_doc,
    iter_documents,
    save,
)

__all__ = ["BODY_KINDS", "CAUSE_RULES", "MATCH_KEYS", "PLACEHOLDER", "VERSION", "Cassette", "CassetteCache",
           "CassetteError", "CassetteWriter", "Encoded", "Episode", "Exchange", "Header", "HttpMessage", "Mark",
           "Omitted", "Problem", "ReplyItem", "Request", "Response", "Severity", "dump_document", "exchange_to_doc",
           "header_to_doc", "iter_documents", "json_bytes", "json_copy", "load", "now_iso", "save", "validate",
           "write_atomically"]
