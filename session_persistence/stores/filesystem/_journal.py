r"""Reading a journal segment: which lines are records, which are damage, where a tear begins.

A segment is a sequence of framed lines (``<crc32> <json>\n``, see :mod:`._format`). Reading
one classifies every complete line:

* **a record**: its checksum passes (it may still be *malformed*: checked by the caller);
* **damage**: its checksum fails and at least one line with a passing checksum follows it.
  A crash tears only the end of a write, and every write starts after the last intact line
  (the lock holder cuts a torn end before it appends), so intact lines after a bad one prove
  that the bad one was written whole and damaged afterwards: it was acknowledged, its content
  is lost, and it must be reported, never cut;
* **the tail**: everything after the last line whose checksum passes. Bytes with no newline
  are a torn write (never acknowledged) or, for a reader without the lock, a write still in
  progress. A *complete* line there that fails its checksum is suspect: a write torn by a power
  cut can leave one, and so can damage to the last acknowledged line. The lock holder cuts the
  tail either way, but keeps a suspect one in ``quarantine/`` and reports it.

The classification is the same in every process, so every process applies the same records.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

__all__ = ["Damage", "DamageLog", "Line", "sessions_named", "split_lines"]

_ID_FIELD = re.compile(
    rb'"(?:put|append|delete|quarantine|session_id)":\s*"([A-Za-z0-9_-]{1,128})"'
)


@dataclass(frozen=True, slots=True)
class Line:
    """One complete line of a segment: bytes ``[start, end)``, newline included."""

    start: int
    end: int
    payload: bytes | None  # the JSON, or None when the frame or its checksum is bad


@dataclass(frozen=True, slots=True)
class Damage:
    """Damage found in a journal segment, as reported by ``check()`` and ``health_check()``."""

    generation: int
    start: int
    end: int
    reason: str
    sessions: tuple[str, ...] = ()  # ids the damaged bytes seem to name (unverified)

    def describe(self) -> str:
        """One sentence for an operator."""
        named = ""
        if self.sessions:
            named = f"; it seems to name session(s) {', '.join(self.sessions[:5])}"
        return (
            f"journal generation {self.generation}, bytes {self.start}-{self.end}: {self.reason}"
            f"{named}. What it recorded is lost unless a backup has it; later records were "
            "recovered where their version chain is intact. A copy of the segment is kept in "
            "quarantine/: restore the sessions named from a backup if needed, then delete it"
        )


@dataclass(slots=True)
class DamageLog:
    """What this process found damaged, for ``health_check()`` and ``check()``.

    ``journal`` lists damage found in segments, ``unkept`` the part of it the next holder of
    the store lock must still copy to ``quarantine/``; ``broken`` maps a session to why its
    version chain broke (it kept its last intact state); ``sessions`` maps a session that a
    read found damaged to the reason.
    """

    journal: list[Damage] = field(default_factory=list)
    unkept: list[Damage] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)


def split_lines(data: bytes) -> tuple[list[Line], int]:
    """Return the complete lines of ``data`` and the offset where its intact part ends.

    The intact part ends after the last line whose checksum passes; what follows it is the
    tail (see the module docstring). Lines before that end with ``payload=None`` are damage.
    """
    lines: list[Line] = []
    intact_end = 0
    position = 0
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            break
        payload = _checked(data, position, newline)
        lines.append(Line(position, newline + 1, payload))
        position = newline + 1
        if payload is not None:
            intact_end = position
    while lines and lines[-1].end > intact_end:
        lines.pop()
    return lines, intact_end


def _checked(data: bytes, start: int, newline: int) -> bytes | None:
    if newline - start < 10 or data[start + 8] != 0x20:
        return None
    try:
        checksum = int(data[start : start + 8], 16)
    except ValueError:
        return None
    payload = data[start + 9 : newline]
    return payload if zlib.crc32(payload) == checksum else None


def sessions_named(data: bytes) -> tuple[str, ...]:
    """Session ids that damaged bytes seem to name (for the report only; never trusted)."""
    found = dict.fromkeys(match.decode() for match in _ID_FIELD.findall(data))
    return tuple(found)[:20]
