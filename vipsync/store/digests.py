"""The keyed e-mail digests the store holds: which keys they are under, and ``rekey``.

After a key rotation (the new secret in ``VIPSYNC_PII_KEY``, the old one appended to
``VIPSYNC_PII_RETIRED_KEYS``), new digests are made through the whole key chain while stored
ones are still under the key that made them, so an order and a member digested on either
side of the rotation would not match. :func:`rekey` moves every stored digest forward to
the current key (``Digester.rekey``: one HMAC step per later key, no address needed):
orders, members, privacy requests, and the digests kept inside payloads (raw payloads,
webhook deliveries, rejected records) so that replays match too. It works in batches, each
committed, and is idempotent: run it again after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from vipsync.connectors.minimize import EMAIL_DIGEST, EMAIL_KEY_ID
from vipsync.connectors.records import canonical_json, payload_sha256
from vipsync.privacy import Digester
from vipsync.store.models import (
    ImportError_,
    Member,
    Order,
    PrivacyRequest,
    RawPayload,
    WebhookDelivery,
    table_of,
)

__all__ = ["RekeyReport", "digest_status", "rekey"]

BATCH = 1000


def digest_status(session: Session, digester: Digester) -> dict[str, dict[str, int]]:
    """Rows with an e-mail digest per table and key id (``none`` = a plain SHA-256 of a
    store not migrated); the current key id is ``digester.key_id``."""
    out: dict[str, dict[str, int]] = {}
    for name, model in (("orders", Order), ("members", Member)):
        rows = session.execute(
            select(model.email_key_id, func.count())
            .where(model.email_hash.is_not(None))
            .group_by(model.email_key_id)
        ).all()
        out[name] = {str(k or "none"): int(n) for k, n in rows}
    rows = session.execute(
        select(PrivacyRequest.subject_key_id, func.count())
        .where(PrivacyRequest.subject_digest.is_not(None))
        .group_by(PrivacyRequest.subject_key_id)
    ).all()
    out["privacy_requests"] = {str(k or "none"): int(n) for k, n in rows}
    return out


@dataclass
class RekeyReport:
    """Rows moved to the current key, per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


def _rekey_payload(value: Any, digester: Digester) -> Any:
    """A kept payload with its ``email_digest`` moved to the current key (any depth)."""
    if isinstance(value, dict):
        out = {k: _rekey_payload(v, digester) for k, v in value.items()}
        digest, key_id = value.get(EMAIL_DIGEST), value.get(EMAIL_KEY_ID)
        if isinstance(digest, str) and key_id != digester.key_id:
            out[EMAIL_DIGEST] = digester.rekey(digest, key_id if isinstance(key_id, str) else None)
            out[EMAIL_KEY_ID] = digester.key_id
        return out
    if isinstance(value, list):
        return [_rekey_payload(v, digester) for v in value]
    return value


def _stale_payload(value: Any, current: str) -> bool:
    text = canonical_json(value) if not isinstance(value, str) else value
    return EMAIL_DIGEST in text and f'"{EMAIL_KEY_ID}":"{current}"' not in text.replace(" ", "")


def rekey(
    factory: sessionmaker[Session], digester: Digester, *, progress: Callable[[str, int], None] | None = None
) -> RekeyReport:
    """Move every stored e-mail digest to the current key; one transaction per batch."""
    report = RekeyReport()
    for name, model in (("orders", Order), ("members", Member)):
        for n in _rekey_column(factory, digester, table_of(model), "email_hash", "email_key_id"):
            report.add(name, n)
            if progress:
                progress(name, report.rows[name])
    for n in _rekey_column(factory, digester, table_of(PrivacyRequest), "subject_digest", "subject_key_id"):
        report.add("privacy_requests", n)
    _rekey_kept_payloads(factory, digester, report)
    return report


def _rekey_column(
    factory: sessionmaker[Session], digester: Digester, table: Table, digest: str, key_id: str
) -> Iterator[int]:
    """Re-key the digests of one column not yet under the current key, a batch per
    transaction; yields each batch's size."""
    current = digester.key_id
    digest_col, key_col = table.c[digest], table.c[key_id]
    while True:
        with factory() as s:
            rows = s.execute(
                select(table.c.id, digest_col, key_col)
                .where(digest_col.is_not(None), (key_col != current) | key_col.is_(None))
                .limit(BATCH)
            ).all()
            if not rows:
                return
            s.execute(
                update(table).where(table.c.id == bindparam("row_id")),
                [{"row_id": r.id, digest: digester.rekey(r[1], r[2]), key_id: current} for r in rows],
            )
            s.commit()
        yield len(rows)


def _rekey_kept_payloads(factory: sessionmaker[Session], digester: Digester, report: RekeyReport) -> None:
    current = digester.key_id
    last = 0
    while True:
        with factory() as s:
            batch = list(
                s.execute(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.id > last)
                    .order_by(WebhookDelivery.id)
                    .limit(BATCH)
                ).scalars()
            )
            if not batch:
                break
            for d in batch:
                if _stale_payload(d.payload, current):
                    d.payload = _rekey_payload(d.payload, digester)
                    report.add("webhook_deliveries", 1)
            last = batch[-1].id
            s.commit()
    last = 0
    while True:
        with factory() as s:
            errors = list(
                s.execute(
                    select(ImportError_).where(ImportError_.id > last).order_by(ImportError_.id).limit(BATCH)
                ).scalars()
            )
            if not errors:
                break
            for e in errors:
                if _stale_payload(e.raw, current):
                    try:
                        e.raw = canonical_json(_rekey_payload(json.loads(e.raw), digester))
                    except ValueError:
                        continue
                    report.add("import_errors", 1)
            last = errors[-1].id
            s.commit()
    last = 0
    while True:
        with factory() as s:
            raws = list(
                s.execute(
                    select(RawPayload).where(RawPayload.id > last).order_by(RawPayload.id).limit(BATCH)
                ).scalars()
            )
            if not raws:
                break
            for r in raws:
                if not _stale_payload(r.payload, current):
                    continue
                payload = _rekey_payload(r.payload, digester)
                sha = payload_sha256(payload)
                twin = s.execute(
                    select(RawPayload.id).where(
                        RawPayload.store_key == r.store_key,
                        RawPayload.kind == r.kind,
                        RawPayload.external_id == r.external_id,
                        RawPayload.sha256 == sha,
                        RawPayload.id != r.id,
                    )
                ).scalar()
                if twin is not None:  # the same version already arrived under the new key
                    s.execute(update(Order).where(Order.raw_payload_id == r.id).values(raw_payload_id=twin))
                    s.delete(r)
                else:
                    r.payload, r.sha256 = payload, sha
                report.add("raw_payloads", 1)
            last = raws[-1].id
            s.commit()
