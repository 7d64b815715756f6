"""The tagging jobs: resolve each unit's facts from the store, run the eligibility engine,
write ``unit_tags``.

- :func:`tag_pending` tags every unit flagged ``needs_tag`` (the repository flags units when
  their order changes or their member's membership changes) or without a tag yet.
- :func:`retag_all` recomputes every unit after a policy or catalog change and rewrites only
  the rows whose verdict changed (``facts_hash`` compare); the result counts them.

Both stream units in id order, ``batch_size`` at a time, one transaction per batch, so
memory stays flat whatever the number of units. On PostgreSQL a batch locks its unit rows
(``FOR UPDATE SKIP LOCKED``): an order upsert that flags a unit while it is being tagged
waits for the batch to commit and flags it again, so no change is lost, and two tagging
workers never take the same units.

Units an order edit took away (``removed``) keep a tag that says so: not a valid purchase,
reason ``refunded`` (the quantity is no longer part of the order), every window null.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, cast

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from vipsync.eligibility.calendar import local_date
from vipsync.eligibility.catalog import Catalog
from vipsync.eligibility.engine import ClaimFacts, ClaimKind, MemberFacts, UnitFacts, Verdict, evaluate
from vipsync.eligibility.loader import load_catalog, load_policies
from vipsync.eligibility.policy import Policy, PolicySet
from vipsync.eligibility.refunds import allocate_refunds
from vipsync.eligibility.status import unit_statuses
from vipsync.errors import PolicyError
from vipsync.store.models import (
    Claim,
    ImportError_,
    Member,
    Order,
    OrderLineRow,
    OrderMemberLink,
    Product,
    Unit,
    UnitTag,
    table_of,
)
from vipsync.store.read_models import iter_units
from vipsync.store.repository import Repository
from vipsync.store.sql import in_values

__all__ = [
    "Rules",
    "TagResult",
    "classify_products",
    "load_rules",
    "retag_all",
    "tag_pending",
    "tag_units",
    "tag_units_now",
    "unit_view",
    "verdicts_for_units",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 2000


@dataclass
class TagResult:
    """What one tagging run did. ``rewritten`` counts existing tags whose verdict changed."""

    mode: str  # "pending" | "all"
    scanned: int = 0
    inserted: int = 0
    rewritten: int = 0
    unchanged: int = 0
    errors: int = 0
    products_reclassified: int = 0
    batches: int = 0
    elapsed_s: float = 0.0
    by_version: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "scanned": self.scanned,
            "inserted": self.inserted,
            "rewritten": self.rewritten,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "products_reclassified": self.products_reclassified,
            "elapsed_s": round(self.elapsed_s, 2),
        }


@dataclass(frozen=True)
class Rules:
    """Everything the engine needs besides the store: catalog, policies, official stores."""

    catalog: Catalog
    policies: PolicySet
    official_stores: frozenset[str]
    # The zone of each store, and of each Amazon marketplace: a membership date given as a
    # timestamp is its calendar date in the zone of the unit's store (POLICY.md, Dates).
    zones: dict[tuple[str, str | None], tzinfo] = field(default_factory=dict)

    def zone(self, store_key: str, marketplace_id: str | None) -> tzinfo:
        return self.zones.get((store_key, marketplace_id)) or self.zones.get((store_key, None)) or UTC


def load_rules(ctx) -> Rules:
    """Load the catalog and policy files named by the settings; official stores from the
    stores file (a store is official only when listed with ``official = true``)."""
    settings = ctx.settings
    return Rules(
        catalog=load_catalog(settings.catalog_file),
        policies=load_policies(settings.policies_dir),
        official_stores=frozenset(s.key for s in ctx.stores if s.official),
        zones=store_zones(ctx.stores),
    )


def store_zones(stores) -> dict[tuple[str, str | None], tzinfo]:
    """(store key, marketplace id or None) -> the zone purchases there are dated in."""
    zones: dict[tuple[str, str | None], tzinfo] = {}
    for store in stores:
        if store.kind == "shopify":
            zones[(store.key, None)] = store.tz
        else:
            for market in store.marketplaces:
                zones[(store.key, market.id)] = market.tz
            zones[(store.key, None)] = store.marketplaces[0].tz
    return zones


def _membership_date(day: date | None, ts: datetime | None, zone: tzinfo) -> date | None:
    """A membership date given as a date is that date; given as a timestamp, its calendar
    date in the zone of the unit's store."""
    return local_date(ts, zone) if ts is not None else day


def tag_pending(ctx, *, batch_size: int | None = None) -> TagResult:
    """Tag every unit that is new or changed since it was last tagged."""
    return tag_units(
        ctx.session_factory, load_rules(ctx), mode="pending", batch_size=batch_size or _batch(ctx)
    )


def retag_all(ctx, *, batch_size: int | None = None, dry_run: bool = False) -> TagResult:
    """Recompute every unit (after a policy or catalog change); rewrite only changed tags.
    ``dry_run`` counts what would change and writes nothing (a policy what-if)."""
    return tag_units(
        ctx.session_factory,
        load_rules(ctx),
        mode="all",
        batch_size=batch_size or _batch(ctx),
        dry_run=dry_run,
    )


def _batch(ctx) -> int:
    return max(DEFAULT_BATCH, ctx.settings.batch_size)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def classify_products(session: Session, catalog: Catalog, *, flag_units: bool) -> tuple[dict[str, str], int]:
    """Fill ``products.category`` from the catalog; returns (sku -> category, changed count).
    With ``flag_units``, the already tagged units of (re-)classified products are flagged
    for tagging."""
    categories: dict[str, str] = {}
    changes: list[dict[str, Any]] = []
    changed_skus: list[str] = []
    for pid, sku, title, old in session.execute(
        select(Product.id, Product.sku, Product.title, Product.category)
    ):
        cat = catalog.classify(sku, title or "")
        categories[sku] = cat
        if cat != old:
            changes.append({"id": pid, "category": cat})
            # Also a first classification: a product inserted while a run was tagging its
            # units was judged "unknown" then, and its units must be judged again.
            changed_skus.append(sku)
    if changes:
        session.execute(update(Product), changes)
    if flag_units and changed_skus:
        for i in range(0, len(changed_skus), 500):
            session.execute(
                update(Unit)
                .where(Unit.sku.in_(changed_skus[i : i + 500]), Unit.needs_tag.is_(False))
                .values(needs_tag=True)
                .execution_options(synchronize_session=False)
            )
    return categories, len(changes)


def tag_units(
    factory: sessionmaker[Session],
    rules: Rules,
    *,
    mode: str,
    batch_size: int = DEFAULT_BATCH,
    now: datetime | None = None,
    dry_run: bool = False,
) -> TagResult:
    """The tagging loop behind both jobs (``mode`` ``pending`` or ``all``). With
    ``dry_run`` every batch is rolled back: the result counts what a real run would write."""
    if mode not in ("pending", "all"):
        raise ValueError("mode is 'pending' or 'all'")
    started = time.perf_counter()
    result = TagResult(mode=mode)
    tagged_at = now or _utcnow()
    with factory() as session:
        categories, result.products_reclassified = classify_products(
            session, rules.catalog, flag_units=mode == "pending"
        )
        session.rollback() if dry_run else session.commit()
    policy_cache: dict[date, Policy | PolicyError] = {}
    with factory() as session:
        max_id = session.execute(select(func.max(Unit.id))).scalar_one() or 0
        pg = session.get_bind().dialect.name == "postgresql"
    # Batches are ranges of unit ids: each query reads one primary-key range, so the whole
    # run is linear in the number of units however many of them are pending.
    lo = 0
    while lo < max_id:
        hi = lo + batch_size
        with factory() as session:
            q = select(Unit.id, Unit.order_id, Unit.sku, Unit.ordinal, Unit.removed, Unit.needs_tag).where(
                Unit.id > lo, Unit.id <= hi
            )
            lo = hi
            if mode == "pending":
                q = q.outerjoin(UnitTag, UnitTag.unit_id == Unit.id).where(
                    or_(Unit.needs_tag.is_(True), UnitTag.unit_id.is_(None))
                )
            q = q.order_by(Unit.id)
            if pg:
                q = q.with_for_update(of=Unit, skip_locked=True)
            units = session.execute(q).all()
            if not units:
                continue
            result.batches += 1
            result.scanned += len(units)
            verdicts, errors = _judge(session, units, rules, categories, policy_cache, pg)
            _write(session, verdicts, tagged_at, result, pg)
            for unit_id, store_key, message in errors:
                result.errors += 1
                _record_tag_error(session, unit_id, store_key, message)
            flagged = [u.id for u in units if u.needs_tag]
            for chunk in _in_chunks(flagged):
                session.execute(
                    update(Unit)
                    .where(in_values(Unit.id, chunk, pg=pg))
                    .values(needs_tag=False)
                    .execution_options(synchronize_session=False)
                )
            session.rollback() if dry_run else session.commit()
    result.elapsed_s = time.perf_counter() - started
    log.info("tagging done", extra=dict(result.as_dict()))
    return result


def _record_tag_error(session: Session, unit_id: int, store_key: str | None, message: str) -> None:
    record_id = f"unit:{unit_id}"
    exists = session.execute(
        select(ImportError_.id).where(
            ImportError_.source == "tagging",
            ImportError_.record_id == record_id,
            ImportError_.status == "open",
        )
    ).first()
    if exists is None:
        Repository(session).record_error(
            source="tagging",
            store_key=store_key,
            record_id=record_id,
            field="purchase_date",
            message=message,
            raw={"unit_id": unit_id},
        )


def _in_chunks(values: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _judge(
    session: Session,
    units: Sequence[Any],
    rules: Rules,
    categories: dict[str, str],
    policy_cache: dict[date, Policy | PolicyError],
    pg: bool = False,
) -> tuple[list[tuple[int, Verdict]], list[tuple[int, str | None, str]]]:
    """Resolve the facts of a batch of units and judge each one."""
    order_ids = sorted({u.order_id for u in units})
    unit_ids = [u.id for u in units]
    orders: dict[int, Any] = {}
    for chunk in _in_chunks(order_ids):
        for o in session.execute(
            select(
                Order.id,
                Order.source,
                Order.store_key,
                Order.purchase_date,
                Order.country,
                Order.is_cancelled,
                Order.is_test,
                Order.payment_pending,
                Order.email_hash,
                Order.marketplace_id,
            ).where(in_values(Order.id, chunk, pg=pg))
        ):
            orders[o.id] = o

    # Refunded quantities per (order, SKU), and the live units and claims they choose among.
    refunded_qty: dict[tuple[int, str], int] = {}
    for chunk in _in_chunks(order_ids):
        for oid, sku, qty in session.execute(
            select(OrderLineRow.order_id, OrderLineRow.sku, func.sum(OrderLineRow.refunded_quantity))
            .where(in_values(OrderLineRow.order_id, chunk, pg=pg), OrderLineRow.refunded_quantity > 0)
            .group_by(OrderLineRow.order_id, OrderLineRow.sku)
        ):
            refunded_qty[(oid, sku)] = int(qty)
    claims: dict[int, ClaimFacts] = {}
    pool_ids: list[int] = list(unit_ids)
    pools: dict[tuple[int, str], list[tuple[int, int]]] = {}
    if refunded_qty:
        refund_orders = sorted({oid for oid, _ in refunded_qty})
        for chunk in _in_chunks(refund_orders):
            for uid, oid, sku, ordinal in session.execute(
                select(Unit.id, Unit.order_id, Unit.sku, Unit.ordinal).where(
                    in_values(Unit.order_id, chunk, pg=pg), Unit.removed.is_(False)
                )
            ):
                if (oid, sku) in refunded_qty:
                    pools.setdefault((oid, sku), []).append((uid, ordinal))
                    pool_ids.append(uid)
    for chunk in _in_chunks(sorted(set(pool_ids))):
        for uid, kind, on in session.execute(
            select(Claim.unit_id, Claim.kind, Claim.claimed_on).where(in_values(Claim.unit_id, chunk, pg=pg))
        ):
            claims[uid] = ClaimFacts(cast(ClaimKind, kind), on)
    refunded_units: set[int] = set()
    for key, pool in pools.items():
        by_ordinal = {ordinal: uid for uid, ordinal in pool}
        claimed = [ordinal for uid, ordinal in pool if uid in claims]
        for ordinal in allocate_refunds(by_ordinal, refunded_qty[key], claimed):
            refunded_units.add(by_ordinal[ordinal])

    # Members: by e-mail for web-store orders, by a verified proof of purchase otherwise.
    # Rows are kept as read; their dates become store-zone dates per unit below.
    by_email: dict[str, Any] = {}
    hashes = sorted({o.email_hash for o in orders.values() if o.email_hash and o.source != "amazon"})
    member_cols = (Member.id, Member.registered_at, Member.registered_ts, Member.exited_at, Member.exited_ts)
    for chunk in _in_chunks(hashes):
        for member_row in session.execute(
            select(Member.email_hash, *member_cols).where(in_values(Member.email_hash, chunk, pg=pg))
        ):
            by_email[member_row.email_hash] = member_row
    by_link: dict[int, Any] = {}
    for chunk in _in_chunks(order_ids):
        for link_row in session.execute(
            select(OrderMemberLink.order_id, *member_cols)
            .join(Member, Member.id == OrderMemberLink.member_id)
            .where(in_values(OrderMemberLink.order_id, chunk, pg=pg))
            .order_by(OrderMemberLink.order_id, OrderMemberLink.verified_at.desc(), OrderMemberLink.id.desc())
        ):
            by_link[link_row.order_id] = link_row  # the earliest verified link wins (last written)

    verdicts: list[tuple[int, Verdict]] = []
    errors: list[tuple[int, str | None, str]] = []
    official = rules.official_stores
    for u in units:
        o = orders[u.order_id]
        row = by_email.get(o.email_hash) if o.source != "amazon" and o.email_hash else None
        if row is None:
            row = by_link.get(o.id)
        member = None
        if row is not None:
            zone = rules.zone(o.store_key, o.marketplace_id)
            member = MemberFacts(
                row.id,
                _membership_date(row.registered_at, row.registered_ts, zone),
                _membership_date(row.exited_at, row.exited_ts, zone),
            )
        facts = UnitFacts(
            purchase_date=o.purchase_date,
            country=o.country,
            category=categories.get(u.sku, "unknown"),
            official=o.store_key in official,
            cancelled=o.is_cancelled,
            test=o.is_test,
            payment_pending=o.payment_pending,
            refunded=u.id in refunded_units,
            removed=u.removed,
            member=member,
            claim=claims.get(u.id),
        )
        policy = policy_cache.get(o.purchase_date)
        if policy is None:
            try:
                policy = rules.policies.select(o.purchase_date)
            except PolicyError as exc:
                policy = exc
            policy_cache[o.purchase_date] = policy
        if isinstance(policy, PolicyError):
            errors.append((u.id, o.store_key, str(policy)))
            continue
        verdicts.append((u.id, evaluate(facts, policy)))
    return verdicts, errors


def _row(unit_id: int, v: Verdict, digest: str, tagged_at: datetime) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "policy_version": v.policy_version,
        "category": v.category,
        "country": v.country,
        "purchase_date": v.purchase_date,
        "eligible": v.eligible,
        "reasons": list(v.reasons),
        "valid_purchase": v.valid_purchase,
        "original_warranty_end": v.original_warranty_end,
        "registration_deadline": v.registration_deadline,
        "extended_warranty_end": v.extended_warranty_end,
        "trade_in_opens": v.trade_in_opens,
        "member_id": v.member_id,
        "benefit_status": v.benefit_status,
        "facts_hash": digest,
        "tagged_at": tagged_at,
    }


def _write(
    session: Session, verdicts: list[tuple[int, Verdict]], tagged_at: datetime, result: TagResult, pg: bool
) -> None:
    if not verdicts:
        return
    existing: dict[int, str] = {}
    ids = [uid for uid, _ in verdicts]
    for chunk in _in_chunks(ids):
        existing.update(
            (r[0], r[1])
            for r in session.execute(
                select(UnitTag.unit_id, UnitTag.facts_hash).where(in_values(UnitTag.unit_id, chunk, pg=pg))
            )
        )
    inserts, updates = [], []
    for uid, v in verdicts:
        digest = v.digest()
        result.by_version[v.policy_version] = result.by_version.get(v.policy_version, 0) + 1
        old = existing.get(uid)
        if old is None:
            inserts.append(_row(uid, v, digest, tagged_at))
        elif old != digest:
            updates.append(_row(uid, v, digest, tagged_at))
        else:
            result.unchanged += 1
    if updates:
        # A rewrite is delete + insert: one statement per chunk on both databases, where a
        # per-row UPDATE would be one round trip per row.
        for chunk in _in_chunks([r["unit_id"] for r in updates]):
            session.execute(
                delete(UnitTag)
                .where(in_values(UnitTag.unit_id, chunk, pg=pg))
                .execution_options(synchronize_session=False)
            )
    result.inserted += len(inserts)
    result.rewritten += len(updates)
    rows = inserts + updates
    if not rows:
        return
    if pg:
        _copy_tags(session, rows)
    else:
        session.execute(insert(table_of(UnitTag)), rows)  # sqlite3's executemany is in-process


_TAG_COLUMNS = (
    "unit_id",
    "policy_version",
    "category",
    "country",
    "purchase_date",
    "eligible",
    "reasons",
    "valid_purchase",
    "original_warranty_end",
    "registration_deadline",
    "extended_warranty_end",
    "trade_in_opens",
    "member_id",
    "benefit_status",
    "facts_hash",
    "tagged_at",
)


def _copy_tags(session: Session, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY the rows in the session's own transaction (an INSERT per row, or
    a compiled multi-row VALUES, costs far more per row than the engine itself)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None, "a live DBAPI connection"
    with raw.cursor() as cur, cur.copy(f"COPY unit_tags ({', '.join(_TAG_COLUMNS)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(tuple(json.dumps(r[c]) if c == "reasons" else r[c] for c in _TAG_COLUMNS))


def verdicts_for_units(session: Session, rules: Rules, unit_ids: Sequence[int]) -> dict[int, Verdict]:
    """The live verdict of some units, computed from the store as it is now (for claim and
    proof checks: pass the verdict to :func:`vipsync.eligibility.claims.check_claim`)."""
    categories = {}
    units = session.execute(
        select(Unit.id, Unit.order_id, Unit.sku, Unit.ordinal, Unit.removed, Unit.needs_tag).where(
            Unit.id.in_(list(unit_ids))
        )
    ).all()
    for sku, title in session.execute(
        select(Product.sku, Product.title).where(Product.sku.in_({u.sku for u in units}))
    ):
        categories[sku] = rules.catalog.classify(sku, title or "")
    verdicts, errors = _judge(session, units, rules, categories, {})
    if errors:
        raise PolicyError(errors[0][2])
    return dict(verdicts)


def tag_units_now(session: Session, rules: Rules, unit_ids: Sequence[int]) -> dict[int, Verdict]:
    """Tag these units in the caller's transaction (a proof, a claim or a registration
    answers with the new tags); returns their verdicts."""
    if not unit_ids:
        return {}
    pg = session.get_bind().dialect.name == "postgresql"
    verdicts = verdicts_for_units(session, rules, unit_ids)
    _write(session, list(verdicts.items()), _utcnow(), TagResult(mode="now"), pg)
    for chunk in _in_chunks(list(unit_ids)):
        session.execute(
            update(Unit)
            .where(in_values(Unit.id, chunk, pg=pg), Unit.needs_tag.is_(True))
            .values(needs_tag=False)
            .execution_options(synchronize_session=False)
        )
    return verdicts


def unit_view(session: Session, *, as_of: date, **filters: Any) -> Iterator[dict[str, Any]]:
    """The units read model with the read-time statuses as of ``as_of`` (what
    ``vipsync units`` prints); ``filters`` go to :func:`vipsync.store.read_models.iter_units`."""
    return iter_units(session, as_of=as_of, statuses=unit_statuses, **filters)
