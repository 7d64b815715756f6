"""The repository: idempotent, batched upserts keyed by store and external id.

Rules kept here, for every way an order arrives (API page, webhook, file):
- the same version twice changes no row (a content digest decides "unchanged");
- a newer version (by the source's update time) replaces an older one; an older one
  never overwrites a newer one;
- at equal update times the stored version stays, unless the other one only moves the
  order forward: it cancels an order not yet cancelled, or refunds more units, and takes
  back neither (a cancellation or a refund never reverts); such a conflict is logged;
- units are keyed by (store, order id, SKU, ordinal) so every source yields the same units;
  a unit an edit takes away is marked ``removed``, never deleted;
- each stored version keeps its raw payload, minimized by the allowlist of
  ``connectors/minimize.py`` (so are rejected records), and e-mails only as keyed digests
  with their key id: a record's plain SHA-256 from a mapper is keyed here, at the storage
  boundary, with the digester the session carries (``make_session_factory``).

Statements are issued in batches (one SELECT to classify a batch, then executemany
inserts/updates), so memory stays flat in the size of an import. New rows (orders, lines,
units, raw payloads) take the bulk path of :mod:`vipsync.store.bulk`: COPY on PostgreSQL
(raw payloads through a staging table and one INSERT ... SELECT ... ON CONFLICT DO
NOTHING, order ids drawn from the sequence), one DBAPI executemany of pre-built tuples on
SQLite. Each raw payload is serialized once: its digest and its stored JSON text come from
the same text. ``Repository(..., bulk=False)`` writes the same rows through Core inserts
(``tests/integration/test_bulk_write_identical.py`` checks both store identical tables).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vipsync.connectors.json_text import canonical_json_finite
from vipsync.connectors.minimize import minimize
from vipsync.connectors.records import MemberRecord, OrderFact, OrderRecord, canonical_json, payload_sha256
from vipsync.errors import ConfigError, RecordError
from vipsync.privacy import Digester
from vipsync.store.bulk import dbapi_errors, insert_rows, raw_connection
from vipsync.store.models import (
    Claim,
    ImportError_,
    ImportRun,
    Member,
    Order,
    OrderFactRow,
    OrderLineRow,
    OrderMemberLink,
    Product,
    RawPayload,
    SyncCursor,
    Unit,
    table_of,
)
from vipsync.store.sql import in_values

__all__ = ["FactCounts", "Repository", "UpsertCounts", "utcnow"]

CHUNK = 500
LINE_COLUMNS = (
    "order_id",
    "line_key",
    "sku",
    "title",
    "quantity",
    "refunded_quantity",
    "unit_price",
    "discount",
)
UNIT_COLUMNS = (
    "order_id",
    "store_key",
    "order_external_id",
    "sku",
    "ordinal",
    "title",
    "removed",
    "needs_tag",
    "created_at",
    "updated_at",
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class UpsertCounts:
    """What one or more upserts did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0  # an older version than the stored one: ignored (also "unchanged" to users)
    changed_order_ids: list[int] = field(default_factory=list, repr=False)

    def __iadd__(self, other: UpsertCounts) -> UpsertCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.changed_order_ids.extend(other.changed_order_ids)
        return self

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.stale


@dataclass
class FactCounts:
    """What recording a batch of facts did: new facts, facts already kept, units flagged."""

    inserted: int = 0
    existing: int = 0
    units_flagged: int = 0


def _insert_ignore(session: Session, table, rows: list[dict], index_elements: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both databases."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    session.execute(ins.on_conflict_do_nothing(index_elements=index_elements), rows)


def _refunded(rec: OrderRecord) -> int:
    return sum(line.refunded_quantity for line in rec.lines)


def _moves_forward(cancelled: bool, refunded: int, rec: OrderRecord) -> bool:
    """True when ``rec`` only moves an order that is (``cancelled``, ``refunded`` units)
    forward: more cancelled or more refunded, nothing taken back."""
    more = _refunded(rec)
    if rec.is_cancelled < cancelled or more < refunded:
        return False
    return rec.is_cancelled > cancelled or more > refunded


def _kept_units(
    wanted: list[tuple[str, int]], have: dict[tuple[str, int], Any], claimed: set[int]
) -> list[tuple[str, int]]:
    """The (SKU, ordinal) units a new version of an order keeps. Ordinals 1..n per SKU, except
    when an edit lowers a SKU's quantity below its stored units: then it takes units like a
    refund (POLICY.md): the units already taken stay taken, then the highest unclaimed
    units go, and claimed ones only when nothing else is left; the kept ones keep their
    ordinals."""
    count: dict[str, int] = {}
    for sku, _ in wanted:
        count[sku] = count.get(sku, 0) + 1
    stored: dict[str, list[Any]] = {}
    for (sku, _), u in have.items():
        stored.setdefault(sku, []).append(u)
    out: list[tuple[str, int]] = []
    for sku, n in count.items():
        units = stored.get(sku, [])
        if len(units) <= n or not any(u.id in claimed for u in units):
            out += [(sku, i) for i in range(1, n + 1)]
            continue
        # Taken first: removed units, then unclaimed by highest ordinal, then claimed ones.
        order = sorted(units, key=lambda u: (not u.removed, u.id in claimed, -u.ordinal))
        out += [(sku, u.ordinal) for u in sorted(order[len(units) - n :], key=lambda u: u.ordinal)]
    return out


def _printable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(OrderRecord))
_set = object.__setattr__


def _stored_as(rec: OrderRecord, email_hash: str | None, email_key_id: str | None, raw: Any) -> OrderRecord:
    """``dataclasses.replace(rec, email_hash=..., email_key_id=..., raw=...)`` without its
    ``__init__`` and checks (nothing they check changes), once per order of an import."""
    new = object.__new__(OrderRecord)
    for name in _ORDER_FIELDS:
        _set(new, name, getattr(rec, name))
    _set(new, "email_hash", email_hash)
    _set(new, "email_key_id", email_key_id)
    _set(new, "raw", raw)
    return new


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Repository:
    """Reads and writes of the normalized store inside one session (one transaction)."""

    def __init__(
        self,
        session: Session,
        *,
        now: Callable[[], datetime] = utcnow,
        digester: Digester | None = None,
        bulk: bool = True,
    ) -> None:
        self.session = session
        self.now = now
        self.pg = session.get_bind().dialect.name == "postgresql"
        # The bulk path (COPY on PostgreSQL, DBAPI executemany on SQLite) for new rows;
        # False: Core inserts, the same rows (kept to check the two agree).
        self.bulk = bulk
        self.digester: Digester | None = digester or session.info.get("digester")

    # ------------------------------------------------------------------ personal data
    def keyed_email(self, digest: str | None, key_id: str | None) -> tuple[str | None, str | None]:
        """(digest, key id) as stored: a mapper's plain SHA-256 (no key id) keyed under the
        current key; a kept digest under a retired key moved forward to the current one."""
        if digest is None:
            return None, None
        if self.digester is None:
            raise ConfigError("storing an e-mail digest needs the PII key (VIPSYNC_PII_KEY)")
        if key_id == self.digester.key_id:
            return digest, key_id
        if key_id is not None and key_id not in self.digester.key_ids:
            raise RecordError(
                f"a kept e-mail digest under key {key_id[:32]!r}, which is not configured "
                "(VIPSYNC_PII_KEY_ID or VIPSYNC_PII_RETIRED_KEYS)",
                field="email_key_id",
            )
        return self.digester.rekey(digest, key_id), self.digester.key_id

    def _prepare(self, rec: OrderRecord) -> OrderRecord:
        """The record as stored: keyed e-mail digest, raw payload minimized."""
        digest, key_id = self.keyed_email(rec.email_hash, rec.email_key_id)
        raw = minimize(
            dict(rec.raw, email_digest=digest, email_key_id=key_id) if digest else rec.raw,
            digester=self.digester,
            source=rec.source,
        )
        return _stored_as(rec, digest, key_id, raw)

    # ------------------------------------------------------------------ orders
    def upsert_orders(self, records: Iterable[OrderRecord]) -> UpsertCounts:
        """Insert new orders, replace older versions, leave equal or newer ones alone."""
        latest: dict[tuple[str, str], OrderRecord] = {}
        for rec in map(self._prepare, records):
            prev = latest.get(rec.identity)
            if (
                prev is None
                or rec.updated_at > prev.updated_at
                or (
                    rec.updated_at == prev.updated_at
                    and _moves_forward(prev.is_cancelled, _refunded(prev), rec)
                )
            ):
                latest[rec.identity] = rec
        counts = UpsertCounts()
        batch = list(latest.values())
        for chunk in _chunks(batch):
            counts += self._upsert_chunk(chunk)
        return counts

    def _upsert_chunk(self, records: Sequence[OrderRecord]) -> UpsertCounts:
        s = self.session
        now = self.now()
        counts = UpsertCounts()
        by_store: dict[str, list[str]] = {}
        for rec in records:
            by_store.setdefault(rec.store_key, []).append(rec.external_id)
        existing: dict[tuple[str, str], Any] = {}
        for store_key, ids in by_store.items():
            query = select(
                Order.id, Order.store_key, Order.external_id, Order.source_updated_at, Order.content_hash
            ).where(Order.store_key == store_key, in_values(Order.external_id, ids, pg=self.pg))
            if self.pg:
                # Lock the stored versions (in id order, so writers never deadlock) until the
                # commit: a concurrent writer of the same order waits, then sees this one's
                # version, so an older version can never replace a newer one in a race.
                # SQLite serializes writers itself (a stale writer must retry).
                query = query.order_by(Order.id).with_for_update()
            rows = s.execute(query).all()
            existing.update({(r.store_key, r.external_id): r for r in rows})

        new: list[tuple[OrderRecord, str]] = []
        replace: list[tuple[OrderRecord, str, int]] = []
        # Each raw payload is serialized once: its digest (in the content digest and the
        # raw table's key) and, on the fast path, the stored JSON text come from this text.
        raw_texts: dict[tuple[str, str], tuple[str, str]] = {}
        ties: list[tuple[OrderRecord, str, int]] = []
        for rec in records:
            raw_text = canonical_json_finite(rec.raw)  # minimized: no NaN or infinity left
            sha = hashlib.sha256(raw_text.encode("utf-8")).hexdigest()
            raw_texts[rec.identity] = (raw_text, sha)
            digest = rec.content_hash(raw_sha256=sha)
            old = existing.get(rec.identity)
            if old is None:
                new.append((rec, digest))
            elif old.content_hash == digest:
                counts.unchanged += 1
            elif rec.updated_at > old.source_updated_at:
                replace.append((rec, digest, old.id))
            elif rec.updated_at == old.source_updated_at:
                ties.append((rec, digest, old.id))
            else:
                counts.stale += 1
        if ties:
            stored = self._progress_of([oid for _, _, oid in ties])
            for rec, digest, oid in ties:
                cancelled, refunded = stored.get(oid, (False, 0))
                if _moves_forward(cancelled, refunded, rec):
                    replace.append((rec, digest, oid))
                else:
                    counts.stale += 1
                    log.warning(
                        "another version with the same update time; the stored one is kept",
                        extra={"store": rec.store_key, "order": rec.external_id},
                    )
        if not new and not replace:
            return counts

        touched = [r for r, _ in new] + [r for r, _, _ in replace]
        raw_ids = self._store_raw(touched, now, raw_texts)
        self._ensure_products(touched, now)

        # Orders.
        if new:
            order_rows = [
                self._order_row(rec, digest, raw_ids, now) | {"created_at": now} for rec, digest in new
            ]
            new_ids = self._insert_orders(order_rows) if self.bulk else self._insert_orders_core(order_rows)
        else:
            new_ids = []
        if replace:
            s.execute(
                update(Order),
                [self._order_row(rec, digest, raw_ids, now) | {"id": oid} for rec, digest, oid in replace],
            )
            replaced_ids = [oid for _, _, oid in replace]
            s.execute(delete(OrderLineRow).where(in_values(OrderLineRow.order_id, replaced_ids, pg=self.pg)))
        else:
            replaced_ids = []

        # Lines.
        line_rows: list[tuple] = []
        for oid, rec in zip(
            new_ids + replaced_ids, [r for r, _ in new] + [r for r, _, _ in replace], strict=True
        ):
            seen_keys: set[str] = set()
            for line in rec.lines:
                key = line.line_key
                while key in seen_keys:  # a source repeating a line id must not break the batch
                    key += "'"
                seen_keys.add(key)
                line_rows.append(
                    (
                        oid,
                        key,
                        line.sku,
                        line.title,
                        line.quantity,
                        line.refunded_quantity,
                        line.unit_price,
                        line.discount,
                    )
                )
        if line_rows:
            self._insert(OrderLineRow, LINE_COLUMNS, line_rows)

        # Units.
        unit_inserts: list[tuple] = []
        unit_updates: list[dict] = []
        current: dict[int, dict[tuple[str, int], Any]] = {}
        claimed: set[int] = set()
        if replaced_ids:
            for chunk_ids in _chunks(replaced_ids):
                for u in s.execute(
                    select(
                        Unit.id,
                        Unit.order_id,
                        Unit.sku,
                        Unit.ordinal,
                        Unit.removed,
                        Unit.title,
                        Claim.id.label("claim"),
                    )
                    .outerjoin(Claim, Claim.unit_id == Unit.id)
                    .where(in_values(Unit.order_id, chunk_ids, pg=self.pg))
                ):
                    current.setdefault(u.order_id, {})[(u.sku, u.ordinal)] = u
                    if u.claim is not None:
                        claimed.add(u.id)
        for oid, rec in zip(
            new_ids + replaced_ids, [r for r, _ in new] + [r for r, _, _ in replace], strict=True
        ):
            titles = {line.sku: line.title for line in reversed(rec.lines)}
            have = current.get(oid, {})
            wanted = _kept_units(rec.unit_keys(), have, claimed)
            for sku, ordinal in wanted:
                if (sku, ordinal) in have:
                    u = have[(sku, ordinal)]
                    unit_updates.append(
                        {
                            "id": u.id,
                            "removed": False,
                            "needs_tag": True,
                            "title": titles[sku],
                            "updated_at": now,
                        }
                    )
                else:
                    unit_inserts.append(
                        (
                            oid,
                            rec.store_key,
                            rec.external_id,
                            sku,
                            ordinal,
                            titles[sku],
                            False,
                            True,
                            now,
                            now,
                        )
                    )
            wanted_set = set(wanted)
            for unit_key, u in have.items():
                if unit_key not in wanted_set:
                    unit_updates.append(
                        {"id": u.id, "removed": True, "needs_tag": True, "title": u.title, "updated_at": now}
                    )
        if unit_inserts:
            self._insert(Unit, UNIT_COLUMNS, unit_inserts)
        if unit_updates:
            s.execute(update(Unit), unit_updates)

        facts = [f for rec in touched for f in rec.facts]
        if facts:  # after the units, so the fact flags the units of this version too
            self.record_facts(facts)

        counts.inserted += len(new)
        counts.updated += len(replace)
        counts.changed_order_ids.extend(new_ids + replaced_ids)
        return counts

    def _insert(self, model: Any, columns: Sequence[str], rows: list[tuple]) -> None:
        """Insert rows (tuples in ``columns`` order) of one table: the bulk path (COPY /
        DBAPI executemany) or a Core executemany; the same stored rows either way."""
        table = table_of(model)
        if self.bulk:
            insert_rows(self.session, table, columns, rows)
        else:
            self.session.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])

    def _insert_orders_core(self, order_rows: list[dict]) -> list[int]:
        orders = table_of(Order)
        result = self.session.execute(
            insert(orders).returning(orders.c.id, sort_by_parameter_order=True), order_rows
        )
        return list(result.scalars().all())

    def _insert_orders(self, order_rows: list[dict]) -> list[int]:
        """Insert new orders in row order; their ids, the same ones a one-by-one insert
        would give: drawn from the sequence on PostgreSQL, next after the highest on
        SQLite (a concurrent writer's clash is a unique violation the writer retries)."""
        n = len(order_rows)
        if self.pg:
            ids = sorted(
                self.session.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, :n)"
                    ),
                    {"n": n},
                ).scalars()
            )
        else:
            top = self.session.execute(select(func.coalesce(func.max(Order.id), 0))).scalar_one()
            ids = list(range(top + 1, top + 1 + n))
        columns = ("id", *order_rows[0])
        self._insert(Order, columns, [(oid, *row.values()) for oid, row in zip(ids, order_rows, strict=True)])
        return ids

    def _progress_of(self, order_ids: Sequence[int]) -> dict[int, tuple[bool, int]]:
        """(cancelled, refunded units) of stored orders."""
        out: dict[int, tuple[bool, int]] = {}
        for chunk in _chunks(list(order_ids)):
            refunded = dict(
                self.session.execute(
                    select(OrderLineRow.order_id, func.coalesce(func.sum(OrderLineRow.refunded_quantity), 0))
                    .where(in_values(OrderLineRow.order_id, chunk, pg=self.pg))
                    .group_by(OrderLineRow.order_id)
                ).all()
            )
            for oid, cancelled in self.session.execute(
                select(Order.id, Order.is_cancelled).where(in_values(Order.id, chunk, pg=self.pg))
            ).all():
                out[oid] = (bool(cancelled), int(refunded.get(oid, 0)))
        return out

    def _order_row(self, rec: OrderRecord, digest: str, raw_ids: dict, now: datetime) -> dict:
        return {
            "source": rec.source,
            "store_key": rec.store_key,
            "external_id": rec.external_id,
            "name": rec.name,
            "marketplace_id": rec.marketplace_id,
            "purchased_at": rec.purchased_at,
            "purchase_date": rec.purchase_date,
            "source_updated_at": rec.updated_at,
            "currency": rec.currency,
            "total_amount": rec.total_amount,
            "financial_status": rec.financial_status,
            "order_status": rec.order_status,
            "payment_pending": rec.payment_pending,
            "is_cancelled": rec.is_cancelled,
            "cancelled_at": rec.cancelled_at,
            "is_test": rec.is_test,
            "email_hash": rec.email_hash,
            "email_key_id": rec.email_key_id,
            "country": rec.country,
            "country_source": rec.country_source,
            "shipping_postal_code": rec.shipping_postal_code,
            "discount_codes": list(rec.discount_codes),
            "trade_in_codes": list(rec.trade_in_codes) or None,
            "is_replacement": rec.is_replacement,
            "replaced_order_id": rec.replaced_order_id,
            "ops_flags": list(rec.ops_flags) or None,
            "content_hash": digest,
            "raw_payload_id": raw_ids.get((rec.store_key, rec.raw_kind, rec.external_id)),
            "updated_at": now,
        }

    def _store_raw(
        self,
        records: Sequence[OrderRecord],
        now: datetime,
        raw_texts: dict[tuple[str, str], tuple[str, str]] | None = None,
    ) -> dict[tuple[str, str, str], int]:
        rows = []
        keys = []
        for rec in records:
            raw_text, sha = (raw_texts or {}).get(rec.identity) or (None, payload_sha256(rec.raw))
            keys.append((rec.store_key, rec.raw_kind, rec.external_id, sha))
            rows.append(
                {
                    "source": rec.source,
                    "store_key": rec.store_key,
                    "kind": rec.raw_kind,
                    "external_id": rec.external_id,
                    "sha256": sha,
                    "payload": raw_text if self.bulk and raw_text is not None else rec.raw,
                    "received_at": now,
                }
            )
        if self.bulk:
            self._insert_raw_bulk(rows)
        else:
            _insert_ignore(self.session, RawPayload, rows, ["store_key", "kind", "external_id", "sha256"])
        ids: dict[tuple[str, str, str], int] = {}
        wanted = set(keys)
        groups: dict[tuple[str, str], list[str]] = {}
        for store_key, kind, external_id, _sha in keys:
            groups.setdefault((store_key, kind), []).append(external_id)
        for (store_key, kind), external_ids in groups.items():
            for chunk in _chunks(external_ids):
                # (store_key, kind, external_id) is the unique index's prefix: an index lookup.
                for r in self.session.execute(
                    select(RawPayload.id, RawPayload.external_id, RawPayload.sha256).where(
                        RawPayload.store_key == store_key,
                        RawPayload.kind == kind,
                        in_values(RawPayload.external_id, chunk, pg=self.pg),
                    )
                ):
                    if (store_key, kind, r.external_id, r.sha256) in wanted:
                        ids[(store_key, kind, r.external_id)] = r.id
        return ids

    def _insert_raw_bulk(self, rows: list[dict]) -> None:
        """Raw payloads, a version already kept left alone: on PostgreSQL COPY into a
        temporary staging table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING."""
        if not rows:
            return
        columns = list(rows[0])
        values = [tuple(r.values()) for r in rows]  # every row's keys in the same order
        conflict = "ON CONFLICT (store_key, kind, external_id, sha256) DO NOTHING"
        if not self.pg:
            insert_rows(self.session, table_of(RawPayload), columns, values, on_conflict=conflict)
            return
        cols = ", ".join(columns)
        with (
            dbapi_errors(self.session, "COPY raw_payloads_stage"),
            raw_connection(self.session).cursor() as cur,
        ):
            # The payload columns only: the stage must not draw ids from the table's sequence.
            cur.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS raw_payloads_stage ON COMMIT DELETE ROWS AS "
                f"SELECT 0 AS seq, {cols} FROM raw_payloads WITH NO DATA"
            )
            with cur.copy(f"COPY raw_payloads_stage (seq, {cols}) FROM STDIN") as copy:
                for seq, row in enumerate(values):
                    copy.write_row((seq, *row))
            cur.execute(
                f"INSERT INTO raw_payloads ({cols}) SELECT {cols} FROM raw_payloads_stage ORDER BY seq {conflict}"
            )
            cur.execute("DELETE FROM raw_payloads_stage")

    def _ensure_products(self, records: Sequence[OrderRecord], now: datetime) -> None:
        titles: dict[str, str] = {}
        for rec in records:
            for line in rec.lines:
                if line.sku and line.sku not in titles:
                    titles[line.sku] = line.title
        if not titles:
            return
        known: set[str] = set()
        skus = list(titles)
        for chunk in _chunks(skus):
            known.update(
                self.session.execute(
                    select(Product.sku).where(in_values(Product.sku, chunk, pg=self.pg))
                ).scalars()
            )
        rows = [
            {"sku": sku, "title": title, "category": None, "first_seen_at": now}
            for sku, title in titles.items()
            if sku not in known
        ]
        _insert_ignore(self.session, Product, rows, ["sku"])

    # ------------------------------------------------------------------ members
    def upsert_members(self, records: Iterable[MemberRecord]) -> UpsertCounts:
        """Insert new members, update changed ones; changed membership re-tags their units."""
        counts = UpsertCounts()
        latest: dict[str, MemberRecord] = {}
        for m in records:
            digest, key_id = self.keyed_email(m.email_hash, m.email_key_id)
            assert digest is not None  # a member always has a digest
            latest[digest] = dataclasses.replace(m, email_hash=digest, email_key_id=key_id)
        items = list(latest.values())
        now = self.now()
        for chunk in _chunks(items):
            hashes = [m.email_hash for m in chunk]
            existing = {
                r.email_hash: r
                for r in self.session.execute(
                    select(
                        Member.id,
                        Member.email_hash,
                        Member.registered_at,
                        Member.exited_at,
                        Member.country,
                        Member.registered_ts,
                        Member.exited_ts,
                    ).where(in_values(Member.email_hash, hashes, pg=self.pg))
                )
            }
            inserts, updates, changed_hashes = [], [], []
            for m in chunk:
                old = existing.get(m.email_hash)
                if old is None:
                    inserts.append(
                        {
                            "email_hash": m.email_hash,
                            "email_key_id": m.email_key_id,
                            "country": m.country,
                            "registered_at": m.registered_at,
                            "exited_at": m.exited_at,
                            "registered_ts": m.registered_ts,
                            "exited_ts": m.exited_ts,
                            "source": "import",
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    changed_hashes.append(m.email_hash)
                elif (old.registered_at, old.exited_at, old.registered_ts, old.exited_ts, old.country) != (
                    m.registered_at,
                    m.exited_at,
                    m.registered_ts,
                    m.exited_ts,
                    m.country,
                ):
                    updates.append(
                        {
                            "id": old.id,
                            "country": m.country,
                            "registered_at": m.registered_at,
                            "exited_at": m.exited_at,
                            "registered_ts": m.registered_ts,
                            "exited_ts": m.exited_ts,
                            "updated_at": now,
                        }
                    )
                    changed_hashes.append(m.email_hash)
                else:
                    counts.unchanged += 1
            if inserts:
                self.session.execute(insert(Member), inserts)
            if updates:
                self.session.execute(update(Member), updates)
            counts.inserted += len(inserts)
            counts.updated += len(updates)
            self.mark_member_units(changed_hashes)
        return counts

    def mark_member_units(self, email_hashes: Sequence[str]) -> int:
        """Flag for re-tagging the units of orders bought with these e-mails or linked to
        these members by a proof of purchase."""
        if not email_hashes:
            return 0
        total = 0
        for chunk in _chunks(list(email_hashes)):
            by_email = select(Order.id).where(Order.email_hash.in_(chunk))
            by_link = (
                select(OrderMemberLink.order_id)
                .join(Member, Member.id == OrderMemberLink.member_id)
                .where(Member.email_hash.in_(chunk))
            )
            res = self.session.execute(
                update(Unit)
                .where(
                    or_(Unit.order_id.in_(by_email), Unit.order_id.in_(by_link)), Unit.needs_tag.is_(False)
                )
                .values(needs_tag=True)
            )
            assert isinstance(res, CursorResult)
            total += res.rowcount or 0
        return total

    # ------------------------------------------------------------------ facts after the sale
    def record_facts(self, facts: Iterable[OrderFact]) -> FactCounts:
        """Keep each fact once (by store, kind and the source's fact key) and flag the units
        of the orders they concern for re-tagging. A fact for an order not stored yet is kept
        as it is: the order's units are new when it arrives, and tagging reads its facts."""
        counts = FactCounts()
        now = self.now()
        by_key: dict[tuple[str, str, str], OrderFact] = {}
        for fact in facts:
            by_key.setdefault((fact.store_key, fact.kind, fact.fact_key), fact)
        batch = list(by_key.values())
        table = table_of(OrderFactRow)
        for chunk in _chunks(batch):
            known: set[tuple[str, str, str]] = set()
            for store_key in {f.store_key for f in chunk}:
                keys = [f.fact_key for f in chunk if f.store_key == store_key]
                known.update(
                    (r.store_key, r.kind, r.fact_key)
                    for r in self.session.execute(
                        select(OrderFactRow.store_key, OrderFactRow.kind, OrderFactRow.fact_key).where(
                            OrderFactRow.store_key == store_key,
                            in_values(OrderFactRow.fact_key, keys, pg=self.pg),
                        )
                    )
                )
            fresh = [f for f in chunk if (f.store_key, f.kind, f.fact_key) not in known]
            counts.existing += len(chunk) - len(fresh)
            rows = [
                {
                    "source": f.source,
                    "store_key": f.store_key,
                    "order_external_id": f.order_external_id,
                    "kind": f.kind,
                    "fact_key": f.fact_key,
                    "posted_at": f.posted_at,
                    "line_key": f.line_key,
                    "sku": f.sku,
                    "quantity": f.quantity,
                    "principal": f.principal,
                    "amount": f.amount,
                    "currency": f.currency,
                    "raw": f.raw,
                    "created_at": now,
                    "returned_line_key": f.returned_line_key,
                }
                for f in fresh
            ]
            _insert_ignore(self.session, table, rows, ["store_key", "kind", "fact_key"])
            counts.inserted += len(rows)
            orders: dict[str, set[str]] = {}
            for f in fresh:
                orders.setdefault(f.store_key, set()).add(f.order_external_id)
            for store_key, ids in orders.items():
                res = self.session.execute(
                    update(Unit)
                    .where(
                        Unit.store_key == store_key,
                        in_values(Unit.order_external_id, sorted(ids), pg=self.pg),
                        Unit.needs_tag.is_(False),
                    )
                    .values(needs_tag=True, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                assert isinstance(res, CursorResult)
                counts.units_flagged += res.rowcount or 0
        return counts

    # ------------------------------------------------------------------ runs and errors
    def start_run(self, kind: str, *, store_key: str | None, source_name: str = "") -> int:
        run = ImportRun(
            kind=kind, store_key=store_key, source_name=source_name, status="running", started_at=self.now()
        )
        self.session.add(run)
        self.session.flush()
        return run.id

    def finish_run(
        self, run_id: int, counts: UpsertCounts, *, read: int, rejected: int, status: str = "done"
    ) -> None:
        self.session.execute(
            update(ImportRun)
            .where(ImportRun.id == run_id)
            .values(
                status=status,
                read=read,
                inserted=counts.inserted,
                updated=counts.updated,
                unchanged=counts.unchanged + counts.stale,
                rejected=rejected,
                finished_at=self.now(),
            )
        )

    def record_error(
        self,
        *,
        source: str,
        store_key: str | None,
        record_id: str,
        field: str | None,
        message: str,
        raw: Any,
        run_id: int | None = None,
    ) -> int:
        """Keep a rejected record where ops can see and replay it: the record minimized by
        the allowlist (its e-mail as the keyed digest), never with personal data. Text is
        kept as the columns can hold it: NUL characters (refused by PostgreSQL) become
        U+FFFD, the id and field are cut to their column width."""
        if isinstance(raw, str):
            with contextlib.suppress(ValueError, RecursionError):
                raw = json.loads(raw)
        try:
            kept = canonical_json(minimize(raw, digester=self.digester, source=source))
        except (RecursionError, ValueError, TypeError):  # a record too odd to keep: its id stays
            kept = canonical_json({"unkept": "the record could not be kept as received"})
        row = ImportError_(
            run_id=run_id,
            source=source,
            store_key=store_key,
            record_id=_printable(str(record_id))[:128],
            field=_printable(field)[:128] if field is not None else None,
            message=_printable(message)[:2000],
            raw=_printable(kept),
            status="open",
            created_at=self.now(),
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def open_errors(self, *, source: str | None = None, limit: int = 1000) -> list[ImportError_]:
        q = select(ImportError_).where(ImportError_.status == "open").order_by(ImportError_.id).limit(limit)
        if source:
            q = q.where(ImportError_.source == source)
        return list(self.session.execute(q).scalars())

    def resolve_error(self, error_id: int, status: str) -> None:
        self.session.execute(
            update(ImportError_)
            .where(ImportError_.id == error_id)
            .values(status=status, resolved_at=self.now())
        )

    # ------------------------------------------------------------------ cursors
    def get_cursor(self, store_key: str, stream: str) -> SyncCursor | None:
        return self.session.execute(
            select(SyncCursor).where(SyncCursor.store_key == store_key, SyncCursor.stream == stream)
        ).scalar_one_or_none()

    def set_cursor(self, store_key: str, stream: str, value: str | None, state: dict | None = None) -> None:
        cur = self.get_cursor(store_key, stream)
        if cur is None:
            self.session.add(
                SyncCursor(
                    store_key=store_key, stream=stream, value=value, state=state or {}, updated_at=self.now()
                )
            )
        else:
            cur.value = value
            cur.state = state or {}
            cur.updated_at = self.now()
        self.session.flush()

    # ------------------------------------------------------------------ reads
    def counts(self) -> dict[str, int]:
        from vipsync.store.models import UnitTag

        out = {}
        for name, model in (
            ("orders", Order),
            ("order_lines", OrderLineRow),
            ("units", Unit),
            ("products", Product),
            ("members", Member),
            ("raw_payloads", RawPayload),
            ("unit_tags", UnitTag),
            ("import_errors_open", None),
        ):
            if model is None:
                out[name] = self.session.execute(
                    select(func.count()).select_from(ImportError_).where(ImportError_.status == "open")
                ).scalar_one()
            else:
                out[name] = self.session.execute(select(func.count()).select_from(model)).scalar_one()
        return out
