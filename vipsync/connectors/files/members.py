"""The members file: CSV with ``email,registered_at`` and optional ``country,exited_at``.

E-mails are reduced to their digest here, at the edge; the address itself goes no further.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import IO

from vipsync.connectors.limits import MAX_YEAR, MIN_YEAR
from vipsync.connectors.minimize import EMAIL_DIGEST, EMAIL_KEY_ID, stored_email_digest
from vipsync.connectors.records import MemberRecord, Rejected, email_digest, normalize_country

__all__ = ["PROGRAM_COUNTRIES", "parse_when", "read_members_csv", "replay_record"]

REQUIRED = ("email", "registered_at")

# The program's regions (POLICY.md): US, JP, the EU 27 and the EU territories with codes.
PROGRAM_COUNTRIES = frozenset(
    [
        "US",
        "JP",
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "GP",
        "MQ",
        "GF",
        "RE",
        "YT",
        "MF",
        "AX",
    ]
)


def parse_when(value: str) -> tuple[date, datetime | None]:
    """An ISO date -> (date, None); an ISO timestamp with offset -> (its UTC date, the
    timestamp). The timestamp is kept because its calendar date depends on the zone of
    each unit's store. A timestamp without an offset is refused: its zone is unknown."""
    value = value.strip()
    if len(value) == 10:
        day = date.fromisoformat(value)
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            raise ValueError(f"year outside {MIN_YEAR}..{MAX_YEAR}")
        return day, None
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError("a timestamp needs its UTC offset")
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise ValueError(f"year outside {MIN_YEAR}..{MAX_YEAR}")
    return ts.astimezone(UTC).date(), ts


def _map_row(row: dict, line: str) -> MemberRecord | Rejected:
    """One members row (``email``; on replay, the kept keyed ``email_digest`` and its
    ``email_key_id``) to a record or a reject."""
    kept, key_id = stored_email_digest(row, None) if row.get(EMAIL_DIGEST) else (None, None)
    if kept is None or key_id is None:
        kept = key_id = None
    digest = kept or email_digest(row.get("email"))
    # The address itself is never kept: the store keys this digest before the row is stored
    # (connectors/minimize.py), and the kept digest is enough to replay.
    raw = {k: v for k, v in row.items() if k not in ("email", EMAIL_DIGEST, EMAIL_KEY_ID)} | {
        "email_sha256" if key_id is None else EMAIL_DIGEST: digest,
        "line": line,
    }
    if key_id is not None:
        raw[EMAIL_KEY_ID] = key_id
    if digest is None:
        return Rejected(line, "email", "missing or not an e-mail address", raw)
    when: dict[str, tuple[date, datetime | None] | None] = {}
    for name in ("registered_at", "exited_at"):
        value = (row.get(name) or "").strip()
        if not value:
            if name == "registered_at":
                return Rejected(
                    line, name, "missing (expected YYYY-MM-DD or an ISO timestamp with offset)", raw
                )
            when[name] = None
            continue
        try:
            when[name] = parse_when(value)
        except ValueError:
            return Rejected(
                line, name, "not a date (expected YYYY-MM-DD or an ISO timestamp with offset)", raw
            )
    country = normalize_country(row.get("country"))
    if country is not None and country not in PROGRAM_COUNTRIES:
        return Rejected(
            line, "country", f"membership is open only in the US, the EU and Japan, not {country}", raw
        )
    registered, exited = when["registered_at"], when["exited_at"]
    assert registered is not None  # a missing registration was rejected above
    return MemberRecord(
        email_hash=digest,
        registered_at=registered[0],
        registered_ts=registered[1],
        exited_at=exited[0] if exited else None,
        exited_ts=exited[1] if exited else None,
        country=country,
        record_id=line,
        email_key_id=key_id,
    )


MAX_LINE_CHARS = 131_072  # a members line is about 60 characters; nothing legitimate is longer


def _physical_lines(text: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, line without its end) for each line; None for a line longer than
    MAX_LINE_CHARS (read through in pieces, never held whole)."""
    number = 0
    while True:
        line = text.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            while (rest := text.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                pass
            yield number, None
            continue
        yield number, line.rstrip("\r\n")


def _cells(line: str) -> list[str]:
    """The cells of one line; ValueError for a quote left open (it would otherwise run on
    into the following lines and swallow them)."""
    reader = csv.reader([line], strict=True)
    try:
        return next(reader, [])
    except csv.Error:
        raise ValueError("unbalanced quote") from None


def read_members_csv(fh: IO[bytes]) -> Iterator[MemberRecord | Rejected]:
    """Yield one MemberRecord per valid row, one Rejected per bad row (named by line
    number; the e-mail never appears in a message or in the kept row). Each line is read
    alone: a quote left open, a line over MAX_LINE_CHARS or cells beyond the header reject
    that line only. A quoted field cannot span lines."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
    lines = _physical_lines(text)
    first = next(lines, None)
    try:
        header = [h.strip().lower() for h in _cells(first[1] or "")] if first is not None else []
    except ValueError:
        header = []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(
            f"members file: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'})"
        )
    for number, line in lines:
        where = f"line {number}"
        if line is None:
            yield Rejected(where, None, f"longer than {MAX_LINE_CHARS} characters", {"line": where})
            continue
        if not line.strip():
            continue
        try:
            cells = _cells(line)
        except ValueError as exc:
            yield Rejected(where, None, str(exc), {"line": where})
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            yield Rejected(
                where, None, f"{len(cells)} cells where the header has {len(header)}", {"line": where}
            )
            continue
        if any("\x00" in c for c in cells):
            yield Rejected(where, None, "contains a NUL character", {"line": where})
            continue
        yield _map_row(dict(zip(header, cells, strict=False)), where)


def replay_record(raw: dict, store=None) -> Iterator[MemberRecord | Rejected]:
    """Map a rejected members row again (its e-mail digest was kept, never the address)."""
    yield _map_row(raw, "replay")
