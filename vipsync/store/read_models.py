"""Read models: units with their tag, order and member, as ops and the CLI see them.

Statuses that depend on the date asked for (active, closing soon, expired) are computed
on read from the stored windows and an as-of date, never stored: the caller passes the
rule (``vipsync.eligibility.status.unit_statuses``, wired by ``vipsync.workers.tagging.
unit_view``), since the store does not import the rules. No personal data leaves this
module: the member is its pseudonymous id.
"""

from __future__ import annotations

import functools
import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    and_,
    any_,
    bindparam,
    case,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from vipsync.store.bulk import raw_connection
from vipsync.store.models import (
    Claim,
    Member,
    Order,
    OrderFactRow,
    OrderLineRow,
    OrderMemberLink,
    Unit,
    UnitTag,
)
from vipsync.store.sql import in_values

__all__ = [
    "STATUS_FIELDS",
    "UNIT_FACT_COLUMNS",
    "UNIT_FIELDS",
    "RefundFacts",
    "UnitSelection",
    "iter_units",
    "order_fact_rows",
    "order_line_rows",
    "refund_facts",
    "selected_unit_ids",
    "unclassified_skus",
    "unit_fact_rows",
]

# The documented fields of `vipsync units`, in output order (docs/eligibility.md).
UNIT_FIELDS = (
    "store",
    "order_id",
    "order_name",
    "sku",
    "ordinal",
    "category",
    "country",
    "purchase_date",
    "eligible",
    "reasons",
    "valid_purchase",
    "original_warranty_end",
    "registration_deadline",
    "member",
    "extended_warranty_end",
    "trade_in_opens",
    "benefit_status",
    "policy_version",
    "removed",
    "tagged",
)
STATUS_FIELDS = (
    "original_warranty_status",
    "registration_status",
    "extended_warranty_status",
    "trade_in_status",
)


def order_fact_rows(
    session: Session, orders: Iterable[tuple[int, str, str]], *, pg: bool = False
) -> dict[int, list[Any]]:
    """The facts after the sale of some orders, given as (order id, store key, external
    id): order id -> rows (kind, line_key, sku, quantity, principal, amount,
    returned_line_key, posted_at, fact_key). Facts are matched by store and external id,
    so a fact recorded before its order counts too."""
    wanted: dict[tuple[str, str], int] = {(store, ext): oid for oid, store, ext in orders}
    out: dict[int, list[Any]] = {}
    by_store: dict[str, list[str]] = {}
    for store, ext in wanted:
        by_store.setdefault(store, []).append(ext)
    for store, exts in by_store.items():
        for i in range(0, len(exts), 5000):
            for row in session.execute(
                select(
                    OrderFactRow.order_external_id,
                    OrderFactRow.kind,
                    OrderFactRow.line_key,
                    OrderFactRow.sku,
                    OrderFactRow.quantity,
                    OrderFactRow.principal,
                    OrderFactRow.amount,
                    OrderFactRow.returned_line_key,
                    OrderFactRow.posted_at,
                    OrderFactRow.fact_key,
                )
                .where(
                    OrderFactRow.store_key == store,
                    in_values(OrderFactRow.order_external_id, exts[i : i + 5000], pg=pg),
                )
                .order_by(OrderFactRow.id)
            ):
                out.setdefault(wanted[(store, row.order_external_id)], []).append(row)
    return out


def order_line_rows(session: Session, order_ids: Sequence[int], *, pg: bool = False) -> dict[int, list[Any]]:
    """order id -> its lines (line_key, sku, quantity, unit_price)."""
    out: dict[int, list[Any]] = {}
    for i in range(0, len(order_ids), 5000):
        for row in session.execute(
            select(
                OrderLineRow.order_id,
                OrderLineRow.line_key,
                OrderLineRow.sku,
                OrderLineRow.quantity,
                OrderLineRow.unit_price,
            )
            .where(in_values(OrderLineRow.order_id, order_ids[i : i + 5000], pg=pg))
            .order_by(OrderLineRow.id)
        ):
            out.setdefault(row.order_id, []).append(row)
    return out


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def iter_units(
    session: Session,
    *,
    as_of: date,
    store_key: str | None = None,
    order: str | None = None,
    include_removed: bool = False,
    statuses: Callable[[Any, date], dict[str, str | None]] | None = None,
    batch_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Every unit (streamed in id order) as a dict of :data:`UNIT_FIELDS` plus the
    read-time :data:`STATUS_FIELDS` as of ``as_of``. ``order`` matches the order's id or
    its name (``#1001``, or the Amazon order id). Untagged units have null tag fields and
    ``tagged`` false. Units an order edit took away are left out unless asked for."""
    base = (
        select(
            Unit.id,
            Unit.store_key,
            Unit.order_external_id,
            Unit.sku,
            Unit.ordinal,
            Unit.removed,
            Order.name,
            Order.purchase_date.label("order_purchase_date"),
            Order.country.label("order_country"),
            UnitTag,
        )
        .join(Order, Order.id == Unit.order_id)
        .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
    )
    if store_key:
        base = base.where(Unit.store_key == store_key)
    if order:
        base = base.where(or_(Order.external_id == order, Order.name == order))
    if not include_removed:
        base = base.where(Unit.removed.is_(False))
    last = 0
    while True:
        rows = session.execute(base.where(Unit.id > last).order_by(Unit.id).limit(batch_size)).all()
        if not rows:
            return
        last = rows[-1].id
        for r in rows:
            yield _unit_dict(r, as_of, statuses)
        session.expunge_all()


def _unit_dict(r: Any, as_of: date, statuses) -> dict[str, Any]:
    tag: UnitTag | None = r.UnitTag
    out: dict[str, Any] = {
        "store": r.store_key,
        "order_id": r.order_external_id,
        "order_name": r.name,
        "sku": r.sku,
        "ordinal": r.ordinal,
        "removed": bool(r.removed),
        "tagged": tag is not None,
    }
    if tag is None:
        out.update(
            category=None,
            country=r.order_country,
            purchase_date=_iso(r.order_purchase_date),
            eligible=None,
            reasons=None,
            valid_purchase=None,
            original_warranty_end=None,
            registration_deadline=None,
            member=None,
            extended_warranty_end=None,
            trade_in_opens=None,
            benefit_status=None,
            policy_version=None,
        )
        out.update(dict.fromkeys(STATUS_FIELDS))
    else:
        out.update(
            category=tag.category,
            country=tag.country,
            purchase_date=_iso(tag.purchase_date),
            eligible=bool(tag.eligible),
            reasons=list(tag.reasons or []),
            valid_purchase=bool(tag.valid_purchase),
            original_warranty_end=_iso(tag.original_warranty_end),
            registration_deadline=_iso(tag.registration_deadline),
            member=tag.member_id,
            extended_warranty_end=_iso(tag.extended_warranty_end),
            trade_in_opens=_iso(tag.trade_in_opens),
            benefit_status=tag.benefit_status,
            policy_version=tag.policy_version,
        )
        out.update(statuses(tag, as_of) if statuses else dict.fromkeys(STATUS_FIELDS))
    return {k: out[k] for k in UNIT_FIELDS + STATUS_FIELDS}


def unclassified_skus(session: Session) -> list[dict[str, Any]]:
    """Products the catalog cannot place (category ``unknown`` or not classified yet), and
    order lines without a SKU (``sku`` empty, by title) no decision placed, with how many
    orders and units carry them, most ordered first (the ``ops_unclassified`` view)."""
    rows = session.execute(
        text(
            "SELECT sku, title, category, orders, units FROM ops_unclassified ORDER BY orders DESC, sku, title"
        )
    ).all()
    return [
        {
            "sku": r.sku,
            "title": r.title or "",
            "category": r.category,
            "orders": int(r.orders),
            "units": int(r.units),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class UnitSelection:
    """Which units a tagging batch reads. A unit is taken when any part says so.

    - ``pending``: flagged ``needs_tag``, or without a tag yet;
    - ``version_by_class``: tagged under another version than the one its store, its tag's
      country and purchase date now select (unless its claim's version, which it keeps): ``(store, country, steps)`` classes, a store or
      country None matching any other, the first matching class deciding; ``steps`` are
      ``(first day, version)`` in date order, the first step's day None (from the
      beginning), a version None where no version applies;
    - ``stale_versions``: tagged under one of these versions;
    - ``skus``: units of these SKUs;
    - ``everything``: every unit.
    """

    pending: bool = True
    version_by_class: (
        tuple[tuple[str | None, str | None, tuple[tuple[date | None, str | None], ...]], ...] | None
    ) = None
    stale_versions: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    everything: bool = False


def _wrong_version(selection: UnitSelection) -> Any:
    """SQL: the unit's tag names another version than the one its store, its tag's country
    and purchase date select now (``version_by_class``), and no claim keeps it there."""
    assert selection.version_by_class
    by_class = []
    for store, country, steps in selection.version_by_class:
        conds = []
        if store is not None:
            conds.append(Unit.store_key == store)
        if country is not None:
            conds.append(UnitTag.country == country)
        by_class.append((and_(*conds) if conds else None, _version_on(steps)))
    now: Any = by_class[-1][1]
    for cond, version in reversed(by_class[:-1]):
        if cond is not None:
            now = case((cond, version), else_=now)
    # A claimed unit tagged under its claim's version stays under it (POLICY.md).
    kept = aliased(Claim, name="kept_claim")
    pinned = (
        select(kept.id).where(kept.unit_id == Unit.id, kept.policy_version == UnitTag.policy_version).exists()
    )
    return and_(UnitTag.unit_id.is_not(None), UnitTag.policy_version != now, ~pinned)


def _selected(selection: UnitSelection, *, pg: bool) -> Any:
    if selection.everything:
        return true()
    parts: list[Any] = []
    if selection.pending:
        parts += [Unit.needs_tag.is_(True), UnitTag.unit_id.is_(None)]
    if selection.version_by_class:
        parts.append(_wrong_version(selection))
    if selection.stale_versions:
        parts.append(in_values(UnitTag.policy_version, list(selection.stale_versions), pg=pg))
    if selection.skus:
        parts.append(in_values(Unit.sku, list(selection.skus), pg=pg))
    return or_(*parts) if parts else false()


def _version_ranges(
    classes: tuple[tuple[str | None, str | None, tuple[tuple[date | None, str | None], ...]], ...],
    versions: Iterable[str],
) -> list[tuple[str, date | None, date | None]]:
    """(tagged version, from, until) purchase-date ranges where some class of
    ``version_by_class`` selects another version than the tags' one (from None: since the
    beginning; until None: open). Outside them no tag can be under the wrong version."""
    days = sorted({day for _, _, steps in classes for day, _ in steps if day is not None})
    bounds: list[date | None] = [None, *days]
    ranges: list[tuple[str, date | None, date | None]] = []
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else None
        selected = set()
        for _, _, steps in classes:
            version = steps[0][1]
            for day, v in steps[1:]:
                if day is not None and start is not None and day <= start:
                    version = v
            selected.add(version or "")
        for w in versions:
            if selected != {w}:
                ranges.append((w, start, end))
    return ranges


def _tagged_versions(session: Session) -> list[str]:
    """The distinct versions of the stored tags, by a walk of the version index (one probe
    per version, not a scan of the tags)."""
    return [
        v
        for (v,) in session.execute(
            text(
                "WITH RECURSIVE v(p) AS (SELECT MIN(policy_version) FROM unit_tags UNION ALL "
                "SELECT (SELECT MIN(policy_version) FROM unit_tags WHERE policy_version > v.p) "
                "FROM v WHERE v.p IS NOT NULL) SELECT p FROM v WHERE p IS NOT NULL"
            )
        )
    ]


def selected_unit_ids(session: Session, selection: UnitSelection) -> array[int]:
    """The ids, in order, of the units ``selection`` takes (not ``everything``), each part
    found through an index: flagged units, untagged ones (an anti-join of two primary
    keys, when there are fewer tags than units), tags of stale versions, units of the SKUs, and tags whose version may be the
    wrong one for their purchase date, read by (version, purchase date) only in the date
    ranges where the versions' steps say another version than theirs, then checked as
    :func:`unit_fact_rows` checks them."""
    pg = session.get_bind().dialect.name == "postgresql"
    parts: list[Any] = []
    if selection.pending:
        parts.append(select(Unit.id).where(Unit.needs_tag.is_(True)))
        # Each tag names its own unit (its key is the unit id, a foreign key): with as many
        # tags as units, every unit has one, and the anti-join is not run.
        units, tags = session.execute(
            select(
                select(func.count()).select_from(Unit).scalar_subquery(),
                select(func.count()).select_from(UnitTag).scalar_subquery(),
            )
        ).one()
        if units > tags:
            parts.append(
                select(Unit.id)
                .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
                .where(UnitTag.unit_id.is_(None))
            )
    if selection.version_by_class:
        wrong = _wrong_version(selection)
        for version, start, end in _version_ranges(selection.version_by_class, _tagged_versions(session)):
            conds = [UnitTag.policy_version == version]
            if start is not None:
                conds.append(UnitTag.purchase_date >= start)
            if end is not None:
                conds.append(UnitTag.purchase_date < end)
            parts.append(select(Unit.id).join(UnitTag, UnitTag.unit_id == Unit.id).where(*conds, wrong))
    if selection.stale_versions:
        parts.append(
            select(UnitTag.unit_id).where(
                in_values(UnitTag.policy_version, list(selection.stale_versions), pg=pg)
            )
        )
    if selection.skus:
        parts.append(select(Unit.id).where(in_values(Unit.sku, list(selection.skus), pg=pg)))
    ids = array("q")  # 8 bytes an id: a million pending units hold 8 MB
    if not parts:
        return ids
    found = union(*parts).subquery()
    ordered = select(found.c[0]).order_by(found.c[0])
    if pg:
        # COPY text of one integer column: a million ids arrive as a few megabytes parsed
        # at C speed, not as a million result rows.
        compiled = ordered.compile(dialect=session.get_bind().dialect)
        chunks: list[bytes] = []
        with (
            raw_connection(session).cursor() as cur,
            cur.copy(f"COPY ({compiled}) TO STDOUT", compiled.params) as copy,
        ):
            chunks.extend(bytes(block) for block in copy)
        ids.extend(map(int, b"".join(chunks).split()))
        return ids
    for part in session.execute(ordered.execution_options(yield_per=20_000)).scalars().partitions():
        ids.extend(part)
    return ids


# The columns of unit_fact_rows, in order (the tagging job unpacks them by position).
UNIT_FACT_COLUMNS = (
    "id",
    "order_id",
    "sku",
    "ordinal",
    "removed",
    "needs_tag",
    "source",
    "store_key",
    "marketplace_id",
    "purchase_date",
    "country",
    "is_cancelled",
    "is_test",
    "payment_pending",
    "member_id",
    "member_registered_at",
    "member_registered_ts",
    "member_exited_at",
    "member_exited_ts",
    "claim_kind",
    "claimed_on",
    "facts_hash",
    "order_external_id",
    "total_amount",
    "is_replacement",
    "claim_version",
    "refunded_lines",
    "after_sale_facts",
)


def _version_on(steps: tuple[tuple[date | None, str | None], ...]) -> Any:
    """SQL: the version of the step the tag's purchase date falls in ('' for none)."""
    whens = [
        (UnitTag.purchase_date < nxt, version or "")
        for (_, version), (nxt, _) in itertools.pairwise(steps)
        if nxt is not None
    ]
    return case(*whens, else_=steps[-1][1] or "") if whens else literal(steps[-1][1] or "")


@functools.cache
def _fact_select() -> Any:
    """The columns and joins of :func:`unit_fact_rows`, built once (building them cost more
    than running the query for the few units of a proof of purchase)."""
    by_email = aliased(Member, name="by_email")
    by_link = aliased(Member, name="by_link")
    first_link = (
        select(OrderMemberLink.member_id)
        .where(OrderMemberLink.order_id == Order.id)
        .order_by(OrderMemberLink.verified_at, OrderMemberLink.id)
        .limit(1)
        .scalar_subquery()
    )
    email_found = by_email.id.is_not(None)

    def member_col(name: str) -> Any:
        return case((email_found, getattr(by_email, name)), else_=getattr(by_link, name)).label(
            f"member_{name}"
        )

    # One index probe per unit (LIMIT 1 keeps the planner from hashing the whole table).
    refunded_lines = (
        select(literal(1))
        .where(OrderLineRow.order_id == Order.id, OrderLineRow.refunded_quantity > 0)
        .limit(1)
        .scalar_subquery()
        .is_not(None)
        .label("refunded_lines")
    )
    after_sale = (
        select(literal(1))
        .where(OrderFactRow.store_key == Order.store_key, OrderFactRow.order_external_id == Order.external_id)
        .limit(1)
        .scalar_subquery()
        .is_not(None)
        .label("after_sale_facts")
    )
    return (
        select(
            Unit.id,
            Unit.order_id,
            Unit.sku,
            Unit.ordinal,
            Unit.removed,
            Unit.needs_tag,
            Order.source,
            Order.store_key,
            Order.marketplace_id,
            Order.purchase_date,
            Order.country,
            Order.is_cancelled,
            Order.is_test,
            Order.payment_pending,
            member_col("id"),
            member_col("registered_at"),
            member_col("registered_ts"),
            member_col("exited_at"),
            member_col("exited_ts"),
            Claim.kind.label("claim_kind"),
            Claim.claimed_on,
            UnitTag.facts_hash,
            Order.external_id.label("order_external_id"),
            Order.total_amount,
            Order.is_replacement,
            Claim.policy_version.label("claim_version"),
            refunded_lines,
            after_sale,
        )
        .join(Order, Order.id == Unit.order_id)
        .outerjoin(UnitTag, UnitTag.unit_id == Unit.id)
        .outerjoin(Claim, Claim.unit_id == Unit.id)
        .outerjoin(by_email, and_(Order.source != "amazon", by_email.email_hash == Order.email_hash))
        .outerjoin(by_link, and_(~email_found, by_link.id == first_link))
        .order_by(Unit.id)
    )


def unit_fact_rows(
    session: Session,
    *,
    selection: UnitSelection | None = None,
    after_id: int = 0,
    limit: int = 2000,
    unit_ids: Sequence[int] | None = None,
    lock: bool = False,
    clear_flags: bool = False,
) -> list[Any]:
    """The facts tagging reads about units, one row per unit in id order, in one query:
    the unit, its order, its claim, its member (by the order's e-mail digest for web-store
    orders, else by the earliest verified proof of purchase), its current tag's digest,
    and whether its order has refunded lines or facts after the sale (the two follow-up
    reads are then needed only for those orders).

    Either the next ``limit`` units after ``after_id`` that ``selection`` takes, or the
    units ``unit_ids`` (those of them ``selection`` still takes, when given). ``lock`` (PostgreSQL) locks the unit rows, skipping locked ones.
    ``clear_flags`` clears ``needs_tag`` on the units returned (in the caller's
    transaction; the rows still say whether they were flagged): on PostgreSQL in the same
    statement that takes and locks them. Rows are plain rows (no ORM processing)."""
    pg = session.get_bind().dialect.name == "postgresql"
    values: dict[str, Any] = {}
    if unit_ids is not None and selection is None:
        # Built once: building the statement cost more than running it for the few units
        # of a proof of purchase or a claim.
        q: Any = _units_fact_statement(pg=pg, lock=lock and pg, clear_flags=clear_flags and pg)
        values["unit_ids"] = list(unit_ids)
    else:
        selected = _selected(selection or UnitSelection(), pg=pg)
        if unit_ids is not None:
            # Units another run tagged meanwhile are no longer taken.
            q = _fact_select().where(in_values(Unit.id, list(unit_ids), pg=pg), selected)
        else:
            q = _fact_select().where(Unit.id > after_id, selected).limit(limit)
        if lock and pg:
            q = q.with_for_update(of=Unit, skip_locked=True)
        if clear_flags and pg:
            # The id bound lets the update walk the unit index from where the batch starts;
            # given ids are probed one by one (the tagging job plans batches by ids as nested loops).
            q = _clearing_flags(q, [Unit.id > after_id] if unit_ids is None else [])
    conn = session.connection()
    rows = list(conn.execute(q, values).all())
    if clear_flags and not pg:
        flagged = [r[0] for r in rows if r[5]]
        for i in range(0, len(flagged), 500):
            conn.execute(update(Unit).where(Unit.id.in_(flagged[i : i + 500])).values(needs_tag=False))
    return rows


def _clearing_flags(q: Any, bound: list[Any]) -> Any:
    """PostgreSQL: the facts taken (and locked) as one CTE, the flags cleared by a
    data-modifying CTE in the same statement; the rows say whether each unit was flagged."""
    taken = q.cte("taken")
    cleared = (
        update(Unit)
        .where(Unit.id == taken.c.id, *bound, Unit.needs_tag.is_(True))
        .values(needs_tag=False)
        .returning(Unit.id)
        .cte("cleared")
    )
    return select(taken).add_cte(cleared).order_by(taken.c.id)


@functools.cache
def _units_fact_statement(*, pg: bool, lock: bool, clear_flags: bool) -> Any:
    """:func:`unit_fact_rows` of the units bound as ``unit_ids``, whatever selects them."""
    ids = (
        Unit.id == any_(bindparam("unit_ids", type_=ARRAY(Unit.id.type)))
        if pg
        else Unit.id.in_(bindparam("unit_ids", expanding=True))
    )
    q = _fact_select().where(ids)
    if lock:
        q = q.with_for_update(of=Unit, skip_locked=True)
    return _clearing_flags(q, []) if clear_flags else q


@dataclass(frozen=True)
class RefundFacts:
    """What refund allocation reads for some orders: the refunded quantity per (order,
    SKU), the live units of those (order, SKU) pairs as (unit id, ordinal), and which of
    those units carry a claim."""

    refunded: dict[tuple[int, str], int]
    pools: dict[tuple[int, str], list[tuple[int, int]]]
    claimed: set[int]


def refund_facts(
    session: Session, order_ids: Sequence[int], extra: dict[tuple[int, str], int] | None = None
) -> RefundFacts:
    """Refund facts of the orders among ``order_ids`` that have refunded lines (two small
    queries, none when no line is refunded). ``extra`` adds refunded quantities known from
    elsewhere (facts after the sale: Amazon refund events); per (order, SKU) the larger
    count stands, never the sum."""
    pg = session.get_bind().dialect.name == "postgresql"
    refunded: dict[tuple[int, str], int] = {}
    for oid, sku, qty in session.execute(
        select(OrderLineRow.order_id, OrderLineRow.sku, func.sum(OrderLineRow.refunded_quantity))
        .where(in_values(OrderLineRow.order_id, list(order_ids), pg=pg), OrderLineRow.refunded_quantity > 0)
        .group_by(OrderLineRow.order_id, OrderLineRow.sku)
    ):
        refunded[(oid, sku)] = int(qty)
    for key, qty in (extra or {}).items():
        if qty > 0:
            refunded[key] = max(refunded.get(key, 0), qty)
    pools: dict[tuple[int, str], list[tuple[int, int]]] = {}
    claimed: set[int] = set()
    if refunded:
        for uid, oid, sku, ordinal, claim in session.execute(
            select(Unit.id, Unit.order_id, Unit.sku, Unit.ordinal, Claim.id)
            .outerjoin(Claim, Claim.unit_id == Unit.id)
            .where(
                in_values(Unit.order_id, sorted({oid for oid, _ in refunded}), pg=pg), Unit.removed.is_(False)
            )
        ):
            if (oid, sku) in refunded:
                pools.setdefault((oid, sku), []).append((uid, ordinal))
                if claim is not None:
                    claimed.add(uid)
    return RefundFacts(refunded, pools, claimed)
