"""Salvaging a damaged cassette (``gwsvcr validate --repair``): keep every document that is whole, drop the ones
that are not (a last exchange cut off by a full disk or a copy stopped half-way, a document edited wrong), and say
which were dropped. A file that does not end with a line break was cut inside its last document: that one goes
too, even when what is left of it still reads as YAML. The original file is kept beside the repaired one, byte for byte.

It works on the text, document by document, and asks the loader (:func:`gwsvcr.cassette.validate`) what is wrong
until nothing is: what the loader accepts is exactly what stays. A header that is itself broken cannot be repaired
(nothing says what the exchanges were recorded against).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gwsvcr.cassette.documents import document_texts
from gwsvcr.cassette.load import validate
from gwsvcr.cassette.model import Problem, Severity
from gwsvcr.cassette.write import write_atomically

__all__ = ["Repair", "repair"]

_ROUNDS = 20  # a dropped document can only reveal problems in the ones that referred to it: a few rounds do


@dataclass
class Repair:
    """What a repair did: documents kept and dropped (with the problem of each), where the original went."""

    path: str
    kept: int = 0  # exchange documents kept
    dropped: list[Problem] = field(default_factory=list)
    backup: str | None = None
    failed: list[Problem] = field(default_factory=list)  # what no repair mends (a broken header)

    def lines(self) -> list[str]:
        if self.failed:
            return [*(str(p) for p in self.failed), f"{self.path}: cannot be repaired: its header is broken"]
        if not self.dropped:
            return [f"{self.path}: ok, nothing to repair"]
        out = [f"{self.path}: dropped the document at line {p.line}: {p.message}" for p in self.dropped]
        out.append(f"{self.path}: repaired: kept {self.kept} exchanges, dropped {len(self.dropped)} document(s); "
                   f"the original is {self.backup}")
        return out


def _readable(raw: bytes) -> str:
    """The text; a file cut inside a multi-byte character keeps what comes before it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return raw[:e.start].decode("utf-8")


def repair(path: str | os.PathLike[str]) -> Repair:
    """Drop what is broken from the cassette at ``path``, in place (the original kept as ``PATH.broken``)."""
    path = os.fspath(path)
    raw = Path(path).read_bytes()
    documents = document_texts(_readable(raw))
    report = Repair(path)
    original = len(documents)
    if len(documents) > 1 and not raw.endswith(b"\n"):  # the writer ends every document with a line break
        first, _ = documents.pop()
        report.dropped.append(Problem(path, first, "cut off mid-line (the file does not end with a line break): "
                                                   "an exchange the writer had not finished"))
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        trial = os.path.join(scratch, os.path.basename(path))
        for _ in range(_ROUNDS):
            # line numbers as the loader will count them in the candidate: documents keep their original ones
            candidate = "".join(text for _, text in documents)
            Path(trial).write_text(candidate, encoding="utf-8")
            problems = [p for p in validate(trial) if p.severity in (Severity.ERROR, Severity.RECOVERABLE)]
            if not problems:
                break
            shift, where = 1, []
            for first, text in documents:
                where.append((shift, first, text))
                shift += text.count("\n")
            broken = set()
            for problem in problems:
                index = max((i for i, (at, _, _) in enumerate(where) if at <= max(problem.line, 1)), default=0)
                if index == 0:
                    report.failed.append(Problem(path, where[0][1] + max(problem.line, 1) - 1, problem.message))
                    return report
                if index not in broken:
                    broken.add(index)
                    report.dropped.append(Problem(path, where[index][1], problem.message))
            documents = [d for i, d in enumerate(documents) if i not in broken]
        else:
            report.failed.append(Problem(path, 1, f"still invalid after {_ROUNDS} rounds of repair"))
            return report
    if len(documents) == original and candidate.encode("utf-8") == raw:
        return report
    report.kept = sum(1 for _, text in documents if re.search(r"^exchange:", text, re.MULTILINE))
    report.backup = path + ".broken"
    Path(report.backup).write_bytes(raw)
    write_atomically(path, candidate)
    return report
