"""The members file: CSV with ``email,registered_at`` and optional ``country,exited_at``.

E-mails are reduced to their digest here, at the edge; the address itself goes no further.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO

from vipsync.connectors.records import MemberRecord, Rejected, email_digest, normalize_country

__all__ = ["read_members_csv", "parse_date", "PROGRAM_COUNTRIES"]

REQUIRED = ("email", "registered_at")

# The program's regions (POLICY.md): US, JP, the EU 27 and the EU territories with codes.
PROGRAM_COUNTRIES = frozenset(
    "US JP AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "GP MQ GF RE YT MF AX".split()
)


def parse_date(value: str) -> date:
    """ISO date, or an ISO timestamp (its calendar date as written)."""
    value = value.strip()
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


def read_members_csv(fh: IO[bytes]) -> Iterator[MemberRecord | Rejected]:
    """Yield one MemberRecord per valid row, one Rejected per bad row (named by line
    number; the e-mail never appears in a message)."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"members file: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'})")
    reader.fieldnames = header
    for row in reader:
        line = f"line {reader.line_num}"
        digest = email_digest(row.get("email"))
        # The address itself is not kept in the error table: its digest is enough to replay.
        raw = {k: v for k, v in row.items() if k != "email"} | {"email_sha256": digest}
        if digest is None:
            yield Rejected(line, "email", "missing or not an e-mail address", raw)
            continue
        try:
            registered = parse_date(row.get("registered_at") or "")
        except ValueError:
            yield Rejected(line, "registered_at", "not a date (expected YYYY-MM-DD)", raw)
            continue
        exited = None
        if (row.get("exited_at") or "").strip():
            try:
                exited = parse_date(row["exited_at"])
            except ValueError:
                yield Rejected(line, "exited_at", "not a date (expected YYYY-MM-DD)", raw)
                continue
        country = normalize_country(row.get("country"))
        if country is not None and country not in PROGRAM_COUNTRIES:
            yield Rejected(line, "country", f"membership is open only in the US, the EU and Japan, not {country}", raw)
            continue
        yield MemberRecord(email_hash=digest, registered_at=registered, country=country, exited_at=exited, record_id=line)


def replay_record(raw: dict, store=None) -> Iterator[MemberRecord | Rejected]:
    """Map a rejected members row again (its e-mail digest was kept, never the address)."""
    digest = raw.get("email_sha256")
    line = "replay"
    if not digest:
        yield Rejected(line, "email", "missing or not an e-mail address", raw)
        return
    try:
        registered = parse_date(raw.get("registered_at") or "")
        exited = parse_date(raw["exited_at"]) if (raw.get("exited_at") or "").strip() else None
    except ValueError:
        yield Rejected(line, "registered_at", "not a date (expected YYYY-MM-DD)", raw)
        return
    country = normalize_country(raw.get("country"))
    if country is not None and country not in PROGRAM_COUNTRIES:
        yield Rejected(line, "country", f"membership is open only in the US, the EU and Japan, not {country}", raw)
        return
    yield MemberRecord(email_hash=digest, registered_at=registered, country=country, exited_at=exited, record_id=line)
