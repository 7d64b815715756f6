"""The tagging jobs: resolve each unit's facts from the store, run the eligibility engine,
write ``unit_tags``.

- :func:`tag_pending` tags every unit flagged ``needs_tag`` (the repository flags units when
  their order changes or their member's membership changes) or without a tag yet.
- :func:`retag_all`, after a policy or catalog change, judges again the units the change
  can affect (``full``: every unit) and rewrites only the rows whose verdict changed
  (``facts_hash`` compare); the result counts them. What a change can affect: units tagged
  under a version their purchase date no longer selects, every unit of a version whose
  rules fingerprint (:func:`rules_fingerprints`, kept in ``tag_rules`` by the last
  completed run) differs, and the units of re-classified products.

A claimed unit is judged under its claim's policy version, whatever version its purchase
date selects now (POLICY.md: claims are frozen under the version they were recorded with).

Both take units in id order, one transaction per batch, so memory stays flat. On
PostgreSQL (``full`` aside) the ids to take are found first through indexes
(:func:`vipsync.store.read_models.selected_unit_ids`: after a policy change, only the tags
in the purchase-date ranges the change moved) and taken ``batch_size`` at a time,
:data:`PIPELINE` batches in flight; on SQLite and with ``full``, the next ``batch_size``
after the last id (keyset). A batch's facts are one query
(:func:`vipsync.store.read_models.unit_fact_rows`), which also says which orders have
refunded lines or facts after the sale, so the follow-up reads run for those orders only;
units sharing the same facts are judged once (:class:`vipsync.eligibility.judge.Judge`);
tags are written set-based (:class:`_TagWriter`: COPY and a staging ``UPDATE ... FROM`` on
PostgreSQL, executemany on SQLite). On PostgreSQL the statement that takes a batch locks
its unit rows (``FOR UPDATE SKIP LOCKED``) and clears their flags: an order upsert that
flags a unit while it is being tagged waits for the batch to commit and flags it again, so
no change is lost, and two tagging workers never take the same units.

Units an order edit took away (``removed``) keep a tag that says so: not a valid purchase,
reason ``refunded`` (the quantity is no longer part of the order), every window null.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, cast

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from vipsync.eligibility.calendar import local_date
from vipsync.eligibility.catalog import Catalog
from vipsync.eligibility.engine import ClaimFacts, ClaimKind, MemberFacts, UnitFacts, Verdict
from vipsync.eligibility.exchanges import ExchangeRow, Takeover, UnitRow, takeovers
from vipsync.eligibility.judge import Judge, with_member
from vipsync.eligibility.loader import load_catalog, load_policies
from vipsync.eligibility.policy import PolicySet
from vipsync.eligibility.refunds import AfterSale, FactRow, LineRow, after_sale, allocate_refunds
from vipsync.eligibility.status import unit_statuses
from vipsync.errors import PolicyError
from vipsync.store.bulk import dbapi_errors, insert_rows, raw_connection, update_rows
from vipsync.store.models import Claim, ImportError_, Product, TagRules, Unit, UnitTag, table_of
from vipsync.store.read_models import (
    UnitSelection,
    iter_units,
    order_fact_rows,
    order_line_rows,
    refund_facts,
    selected_unit_ids,
    unit_fact_rows,
)
from vipsync.store.repository import Repository
from vipsync.store.sql import in_values

__all__ = [
    "Rules",
    "TagResult",
    "cached_rules",
    "classify_products",
    "load_rules",
    "retag_all",
    "rules_fingerprints",
    "tag_pending",
    "tag_units",
    "tag_units_now",
    "unit_view",
    "verdicts_for_units",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 5000


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

    def add(self, part: TagResult) -> None:
        """Count a batch's result in this run's."""
        self.scanned += part.scanned
        self.inserted += part.inserted
        self.rewritten += part.rewritten
        self.unchanged += part.unchanged
        self.errors += part.errors
        self.batches += part.batches
        for version, n in part.by_version.items():
            self.by_version[version] = self.by_version.get(version, 0) + n

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


def load_rules(ctx, session: Session | None = None) -> Rules:
    """Load the catalog and policy files named by the settings, with the ops decisions kept
    in the store on top (they win: see vipsync.workers.decisions); official stores from the
    stores file (a store is official only when listed with ``official = true``). The
    decisions are read through ``session`` when given (no second connection)."""
    from vipsync.workers.decisions import with_store_decisions

    settings = ctx.settings
    rules = Rules(
        catalog=load_catalog(settings.catalog_file),
        policies=load_policies(settings.policies_dir),
        official_stores=frozenset(s.key for s in ctx.stores if s.official),
        zones=store_zones(ctx.stores),
    )
    return with_store_decisions(ctx, rules, session)


RULES_MAX_AGE_S = 30.0


_RULES_RELOAD = threading.Lock()


def cached_rules(ctx, *, session: Session | None = None, max_age_s: float = RULES_MAX_AGE_S) -> Rules:
    """:func:`load_rules`, reused by this context for ``max_age_s`` (the API's hot paths
    judge a handful of units per request; reading the catalog and policy files each time
    would cost more than the judging). A rules change reaches them within that time.

    A caller inside a session passes it: the reload reads through it, never waiting for a
    second connection from a pool its own requests may hold. One thread reloads at a time;
    while it does, the others go on with the copy they have."""
    now = time.monotonic()
    cached = ctx.__dict__.get("_vipsync_rules")
    if cached is not None and now - cached[0] < max_age_s:
        return cached[1]
    if not _RULES_RELOAD.acquire(blocking=cached is None):
        return cached[1]
    try:
        cached = ctx.__dict__.get("_vipsync_rules")
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]  # another thread reloaded while this one waited
        rules = load_rules(ctx, session)
        ctx.__dict__["_vipsync_rules"] = (now, rules)
        return rules
    finally:
        _RULES_RELOAD.release()


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


def retag_all(ctx, *, batch_size: int | None = None, dry_run: bool = False, full: bool = False) -> TagResult:
    """After a policy or catalog change: judge again every unit the change can affect
    (``full``: every unit); rewrite only changed tags. ``dry_run`` counts what would
    change and writes nothing (a policy what-if)."""
    return tag_units(
        ctx.session_factory,
        load_rules(ctx),
        mode="all",
        batch_size=batch_size or _batch(ctx),
        dry_run=dry_run,
        full=full,
    )


def _batch(ctx) -> int:
    return max(DEFAULT_BATCH, ctx.settings.batch_size)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def classify_products(
    session: Session, catalog: Catalog, *, flag_units: bool
) -> tuple[dict[str, str], list[str]]:
    """Fill ``products.category`` from the catalog; returns (sku -> category, SKUs whose
    category changed). With ``flag_units``, the already tagged units of (re-)classified
    products are flagged for tagging."""
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
    return categories, changed_skus


def rules_fingerprints(rules: Rules) -> dict[str, str]:
    """policy version -> a digest of everything besides the store a verdict under it
    depends on: the version's terms, the official stores and the stores' zones (the
    catalog is followed through ``products.category``)."""
    shared = json.dumps(
        {
            "official": sorted(rules.official_stores),
            "zones": sorted(f"{key}/{market or ''}={zone}" for (key, market), zone in rules.zones.items()),
        }
    )
    return {
        p.version: hashlib.sha256(f"{_canonical_json(p.model_dump())}|{shared}".encode()).hexdigest()
        for p in rules.policies.policies
    }


def _canonical_json(value: Any) -> str:
    """JSON of a policy's terms that is the same in every process: sets (stores,
    countries, regions, categories) sorted, keys sorted. A set's own order follows the
    process's string hashing, so a fingerprint taken from it would differ from one run of
    the program to the next, and every run would judge every unit again."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (set, frozenset)):
            return sorted(plain(x) for x in v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (date, datetime)):
            return v.isoformat()
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)

    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"))


def tag_units(
    factory: sessionmaker[Session],
    rules: Rules,
    *,
    mode: str,
    batch_size: int = DEFAULT_BATCH,
    now: datetime | None = None,
    dry_run: bool = False,
    full: bool = False,
) -> TagResult:
    """The tagging loop behind both jobs (``mode`` ``pending`` or ``all``). With
    ``dry_run`` every batch is rolled back: the result counts what a real run would write.

    ``all`` judges the pending units and those the rules changed since the last completed
    ``all`` run can affect: units tagged under a version that a date no longer selects, or
    under a version whose rules fingerprint changed (or was never recorded), and units of
    re-classified products; ``full`` judges every unit."""
    if mode not in ("pending", "all"):
        raise ValueError("mode is 'pending' or 'all'")
    started = time.perf_counter()
    result = TagResult(mode=mode)
    tagged_at = now or _utcnow()
    fingerprints = rules_fingerprints(rules)
    with factory() as session:
        categories, changed_skus = classify_products(session, rules.catalog, flag_units=not full)
        result.products_reclassified = len(changed_skus)
        selection = _selection(session, rules, mode, full, changed_skus, fingerprints)
        session.rollback() if dry_run else session.commit()
        pg = session.get_bind().dialect.name == "postgresql"
    judge = Judge(rules.policies)
    writer = _TagWriter(tagged_at, pg=pg)
    merge = threading.Lock()

    def finish(session: Session, rows: Sequence[Any]) -> None:
        """Judge a taken batch, write its tags, commit (or roll back a dry run)."""
        part = TagResult(mode=mode, batches=1, scanned=len(rows))
        verdicts, errors, notes = _judge(session, rows, rules, categories, judge)
        writer.write(session, verdicts, part)
        for unit_id, store_key, field_name, message in errors + notes:
            part.errors += 1
            _record_tag_error(session, unit_id, store_key, field_name, message)
        session.rollback() if dry_run else session.commit()
        with merge:
            result.add(part)

    if pg and not full:
        # The units to judge are found first, through indexes (flagged, untagged, and those
        # a change of versions can affect: a few percent of the store, typically), then
        # taken by id in batches, PIPELINE of them in flight: one judged in Python while
        # the database takes and writes another.
        with factory() as session:
            ids = selected_unit_ids(session, selection)
        chunks = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]

        def by_ids(chunk: Sequence[int]) -> None:
            with factory() as session:
                _batch_settings(session, by_ids=True)
                rows = unit_fact_rows(
                    session, selection=selection, unit_ids=chunk, lock=True, clear_flags=True
                )
                if rows:
                    finish(session, rows)

        _in_pipeline(by_ids, chunks, workers=PIPELINE)
    else:
        last = 0
        while True:
            with factory() as session:
                if pg:
                    _batch_settings(session, by_ids=False)
                # Taken, locked and unflagged in one statement on PostgreSQL.
                rows = unit_fact_rows(
                    session, selection=selection, after_id=last, limit=batch_size, lock=pg, clear_flags=True
                )
                if not rows:
                    break
                last = rows[-1][0]
                finish(session, rows)
    if mode == "all" and not dry_run:
        with factory() as session:
            _record_fingerprints(session, fingerprints, tagged_at)
            session.commit()
    result.elapsed_s = time.perf_counter() - started
    log.info("tagging done", extra=dict(result.as_dict()))
    return result


# Batches in flight at once on PostgreSQL: while one is judged in Python, the database
# takes and writes another (the two share the machine's cores).
PIPELINE = 2


def _batch_settings(session: Session, *, by_ids: bool) -> None:
    """PostgreSQL settings of one batch's transaction."""
    # A batch is a short indexed scan: starting parallel workers costs more than it saves,
    # and so does compiling its expressions (JIT took about 25 ms of a 100 ms batch).
    session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    session.execute(text("SET LOCAL jit = off"))
    if by_ids:
        # A few thousand given units: index probes. With the ids in an array the planner
        # cannot tell how few rows each join gets, and would hash whole tables.
        session.execute(text("SET LOCAL enable_hashjoin = off"))
        session.execute(text("SET LOCAL enable_mergejoin = off"))


def _in_pipeline(
    work: Callable[[Sequence[int]], None], chunks: Sequence[Sequence[int]], *, workers: int
) -> None:
    """Run ``work`` on each chunk, ``workers`` at a time, each in its own thread and
    session; the first error stops the chunks not started yet and is raised."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            work(chunk)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tagging") as pool:
        futures = [pool.submit(work, chunk) for chunk in chunks]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _selection(
    session: Session,
    rules: Rules,
    mode: str,
    full: bool,
    changed_skus: list[str],
    fingerprints: dict[str, str],
) -> UnitSelection:
    if mode == "pending":
        return UnitSelection(pending=True)
    if full:
        return UnitSelection(everything=True)
    recorded = dict(session.execute(select(TagRules.policy_version, TagRules.fingerprint)).all())
    # Changed, new, and gone versions. With none, no unit's version or terms can differ:
    # which version a unit gets depends only on the versions' fingerprinted terms.
    stale = {v for v, fp in fingerprints.items() if recorded.get(v) != fp} | (
        set(recorded) - set(fingerprints)
    )
    if not stale:
        return UnitSelection(pending=True, skus=tuple(changed_skus))
    return UnitSelection(
        pending=True,
        version_by_class=rules.policies.selection_classes(),
        stale_versions=tuple(sorted(stale)),
        skus=tuple(changed_skus),
    )


def _record_fingerprints(session: Session, fingerprints: dict[str, str], at: datetime) -> None:
    session.execute(delete(TagRules))
    if fingerprints:
        session.execute(
            insert(TagRules),
            [{"policy_version": v, "fingerprint": fp, "recorded_at": at} for v, fp in fingerprints.items()],
        )


def _record_tag_error(
    session: Session, unit_id: int, store_key: str | None, field_name: str, message: str
) -> None:
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
            field=field_name,
            message=message,
            raw={"unit_id": unit_id},
        )


def _in_chunks(values: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# (unit id, shared verdict, the unit's member id, digest, existing digest or None)
_Judged = tuple[int, Verdict, int | None, str, str | None]
# (unit id, store key, field, message) of a unit that could not be judged
_Failed = tuple[int, str | None, str, str]


def _judge(
    session: Session,
    rows: Sequence[Any],
    rules: Rules,
    categories: dict[str, str],
    judge: Judge,
) -> tuple[list[_Judged], list[_Failed], list[_Failed]]:
    """Judge a batch of fact rows (:func:`vipsync.store.read_models.unit_fact_rows`,
    columns in the order of its ``UNIT_FACT_COLUMNS``): (judged units, units that could
    not be judged, judged units with a problem for ops). A claimed unit is judged under
    its claim's version (POLICY.md: claims are frozen under the version they were recorded
    with), whatever version its purchase date selects now; a claim naming a version that is
    not loaded cannot freeze anything: the unit is judged as if unclaimed by version, and
    the claim is reported."""
    refunded_units: set[int] = set()
    deleted, fact_refunds, exchanges = _after_sale_facts(session, [r for r in rows if r[27]])
    with_refunds = sorted({r[1] for r in rows if r[26]} | {oid for oid, _ in fact_refunds})
    if with_refunds:
        refunds = refund_facts(session, with_refunds, fact_refunds)
        for key, pool in refunds.pools.items():
            by_ordinal = {ordinal: uid for uid, ordinal in pool}
            claimed = [ordinal for uid, ordinal in pool if uid in refunds.claimed]
            for ordinal in allocate_refunds(by_ordinal, refunds.refunded[key], claimed):
                refunded_units.add(by_ordinal[ordinal])
                if by_ordinal[ordinal] in refunds.claimed:  # POLICY.md: the claim stays; ops look at it
                    log.warning(
                        "a refund takes a unit with a recorded claim", extra={"unit_id": by_ordinal[ordinal]}
                    )

    moved = _takeovers(session, rows, exchanges, refunded_units, rules) if exchanges else {}
    judged: list[_Judged] = []
    errors: list[_Failed] = []
    notes: list[_Failed] = []
    loaded = {p.version for p in rules.policies.policies}
    official = rules.official_stores
    # Lines without a SKU are placed by their title (an ops decision), if at all.
    no_sku = [r[0] for r in rows if not r[2]]
    titles = (
        dict(session.execute(select(Unit.id, Unit.title).where(Unit.id.in_(no_sku))).all()) if no_sku else {}
    )
    members: dict[tuple[int, str, str | None], MemberFacts] = {}
    claims: dict[tuple[str, date], ClaimFacts] = {}
    for (
        uid,
        order_id,
        sku,
        _ordinal,
        removed,
        _needs_tag,
        _source,
        store_key,
        marketplace_id,
        purchase_date,
        country,
        cancelled,
        test,
        payment_pending,
        member_id,
        registered_at,
        registered_ts,
        exited_at,
        exited_ts,
        claim_kind,
        claimed_on,
        old_digest,
        _external_id,
        _total,
        replacement,
        claim_version,
        _refunded_lines,
        _after_sale,
    ) in rows:
        member = None
        if member_id is not None:
            mkey = (member_id, store_key, marketplace_id)
            member = members.get(mkey)
            if member is None:
                zone = rules.zone(store_key, marketplace_id)
                member = members[mkey] = MemberFacts(
                    member_id,
                    _membership_date(registered_at, registered_ts, zone),
                    _membership_date(exited_at, exited_ts, zone),
                )
        claim = None
        if claim_kind is not None:
            claim = claims.get((claim_kind, claimed_on))
            if claim is None:
                claim = claims[(claim_kind, claimed_on)] = ClaimFacts(cast(ClaimKind, claim_kind), claimed_on)
        if uid in moved:  # added by an exchange or edit: the returned unit's date and claim
            purchase_date, claim = moved[uid]
        facts = UnitFacts(
            purchase_date,
            country,
            categories.get(sku, "unknown") if sku else rules.catalog.classify("", titles.get(uid) or ""),
            store_key in official,
            cancelled or order_id in deleted,
            test,
            payment_pending,
            uid in refunded_units,
            removed,
            member,
            claim,
            bool(replacement),
        )
        if claim_version is not None and claim_version not in loaded:
            notes.append(
                (
                    uid,
                    store_key,
                    "claims.policy_version",
                    f"the unit's claim names policy version {claim_version!r}, which is not loaded: "
                    "the unit is judged under the version its purchase date selects",
                )
            )
            claim_version = None
        try:
            shared, unit_member_id, digest = judge.judge(facts, store_key=store_key, version=claim_version)
        except PolicyError as exc:
            errors.append((uid, store_key, "purchase_date", str(exc)))
            continue
        judged.append((uid, shared, unit_member_id, digest, old_digest))
    return judged, errors, notes


# order id -> (its exchange facts, its lines)
_Exchanges = dict[int, tuple[list[ExchangeRow], list[LineRow]]]


def _after_sale_facts(
    session: Session, rows: Sequence[Any]
) -> tuple[set[int], dict[tuple[int, str], int], _Exchanges]:
    """The facts after the sale of the orders of ``rows`` (fact rows of units whose order
    has some: refund events, returns, deletions, exchanges; read by store and order id, so
    facts that came before their order count): the orders deleted at the source, the
    refunded quantity per (order, SKU) they decide, and the exchanges and edits of each
    order that has some, with its lines."""
    deleted: set[int] = set()
    refunded: dict[tuple[int, str], int] = {}
    exchanges: _Exchanges = {}
    if not rows:
        return deleted, refunded, exchanges
    orders = {r[1]: (r[7], r[22], r[23]) for r in rows}  # order id -> store, external id, total
    pg = session.get_bind().dialect.name == "postgresql"
    fact_rows = order_fact_rows(
        session, [(oid, store, ext) for oid, (store, ext, _) in orders.items()], pg=pg
    )
    if not fact_rows:
        return deleted, refunded, exchanges
    lines_of = order_line_rows(session, sorted(fact_rows), pg=pg)
    for oid, facts in fact_rows.items():
        lines = [LineRow(r.line_key, r.sku, r.quantity, r.unit_price) for r in lines_of.get(oid, [])]
        moves = [
            ExchangeRow(f.line_key, f.returned_line_key, f.quantity, f.posted_at, f.fact_key)
            for f in facts
            if f.kind == "exchange"
        ]
        if moves:
            exchanges[oid] = (moves, lines)
        verdict: AfterSale = after_sale(
            (
                FactRow(f.kind, f.line_key, f.sku, f.quantity, f.principal, f.amount)
                for f in facts
                if f.kind != "exchange"
            ),
            lines,
            orders[oid][2],
        )
        if verdict.deleted:
            deleted.add(oid)
        if verdict.whole_order:
            for line in lines:
                refunded[(oid, line.sku)] = refunded.get((oid, line.sku), 0) + line.quantity
        else:
            for sku, qty in (verdict.refunded_by_sku or {}).items():
                refunded[(oid, sku)] = qty
    return deleted, refunded, exchanges


def _takeovers(
    session: Session, rows: Sequence[Any], exchanges: _Exchanges, refunded_units: set[int], rules: Rules
) -> dict[int, tuple[date, ClaimFacts | None]]:
    """Unit id -> (purchase date, claim) of the units exchanges and edits added (POLICY.md,
    "Shopify exchanges and edits"): a unit that took the place of a returned one has that
    unit's purchase date and claim (its own claim first, once one is recorded on it),
    through chains of exchanges; one that returned nothing is a purchase of the day of the
    exchange or edit, in the store's zone."""
    pg = session.get_bind().dialect.name == "postgresql"
    order_of = {r[1]: (r[9], rules.zone(r[7], r[8])) for r in rows}
    units: dict[int, list[UnitRow]] = {}
    removed: set[int] = set()
    claims: dict[int, ClaimFacts] = {}
    for uid, oid, sku, ordinal, is_removed, kind, claimed_on in session.execute(
        select(Unit.id, Unit.order_id, Unit.sku, Unit.ordinal, Unit.removed, Claim.kind, Claim.claimed_on)
        .outerjoin(Claim, Claim.unit_id == Unit.id)
        .where(in_values(Unit.order_id, sorted(exchanges), pg=pg))
    ):
        units.setdefault(oid, []).append(UnitRow(uid, sku, ordinal))
        if is_removed:
            removed.add(uid)
        if kind is not None:
            claims[uid] = ClaimFacts(cast(ClaimKind, kind), claimed_on)
    out: dict[int, tuple[date, ClaimFacts | None]] = {}
    for oid, (moves, lines) in exchanges.items():
        if oid not in order_of:
            continue
        purchased, zone = order_of[oid]
        taken = {u.unit_id for u in units.get(oid, []) if u.unit_id in removed or u.unit_id in refunded_units}
        added = takeovers(moves, lines, units.get(oid, []), taken)
        for uid in added:
            out[uid] = _taken_over(uid, added, claims, purchased, zone)
    return out


def _taken_over(
    uid: int, added: dict[int, Takeover], claims: dict[int, ClaimFacts], purchased: date, zone: tzinfo
) -> tuple[date, ClaimFacts | None]:
    """(purchase date, claim) of one unit, following the units it took the place of."""
    inherited: ClaimFacts | None = None
    own = claims.get(uid)
    for _ in range(len(added) + 1):  # a chain never loops back; the bound makes sure
        move = added.get(uid)
        if move is None:
            return purchased, own or inherited or claims.get(uid)
        if move.returned_unit is None:
            day = purchased if move.returned else local_date(move.at, zone)
            return day, own or inherited
        uid = move.returned_unit
        inherited = inherited or claims.get(uid)
    return purchased, own or inherited


# unit_tags columns in the order tags are written: the unit's own values first, then
# those of the shared verdict, then the run's time.
_TAG_COLUMNS = (
    "unit_id",
    "member_id",
    "facts_hash",
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
    "benefit_status",
    "tagged_at",
)
_REASONS_AT = _TAG_COLUMNS.index("reasons")


def _shared_values(v: Verdict, tagged_at: datetime) -> tuple[Any, ...]:
    """The values of :data:`_TAG_COLUMNS` after ``facts_hash`` (``reasons`` as JSON text)."""
    return (
        v.policy_version,
        v.category,
        v.country,
        v.purchase_date,
        v.eligible,
        json.dumps(list(v.reasons)),
        v.valid_purchase,
        v.original_warranty_end,
        v.registration_deadline,
        v.extended_warranty_end,
        v.trade_in_opens,
        v.benefit_status,
        tagged_at,
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _param_text(value: Any) -> str | None:
    """One value as text PostgreSQL reads with the column's input function (None: NULL):
    a query parameter as it is, COPY text once escaped (:func:`_copy_text`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    form = _param_text(value)
    return "\\N" if form is None else form.translate(_COPY_ESCAPES)


class _TagWriter:
    """Writes a run's new and changed tags set-based, each shared verdict formatted once:
    on PostgreSQL new tags by COPY, changed ones by COPY into a staging table and one
    ``UPDATE ... FROM`` (a few: one pipelined ``UPDATE`` each); on SQLite one ``executemany`` of pre-built tuples each. Unchanged
    tags (same digest) are left as they are."""

    # Up to this many changed tags, PostgreSQL updates them row by row (see _update_few).
    few_rows = 64

    def __init__(self, tagged_at: datetime, *, pg: bool, max_entries: int = 50_000) -> None:
        self.tagged_at = tagged_at
        self.pg = pg
        self._max_entries = max_entries
        self._formatted: dict[Verdict, Any] = {}

    def _shared(self, v: Verdict) -> Any:
        """The shared part of a tag row: COPY text (PostgreSQL) or a tuple (SQLite)."""
        found = self._formatted.get(v)
        if found is None:
            values = _shared_values(v, self.tagged_at)
            found = "\t".join(map(_copy_text, values)) + "\n" if self.pg else values
            if len(self._formatted) >= self._max_entries:
                self._formatted.clear()
            self._formatted[v] = found
        return found

    def write(self, session: Session, judged: Sequence[_Judged], result: TagResult) -> None:
        new: list[_Judged] = []
        changed: list[_Judged] = []
        by_version = result.by_version
        for row in judged:
            version = row[1].policy_version
            by_version[version] = by_version.get(version, 0) + 1
            if row[4] == row[3]:
                result.unchanged += 1
            elif row[4] is None:
                new.append(row)
            else:
                changed.append(row)
        result.inserted += len(new)
        result.rewritten += len(changed)
        if self.pg:
            self._write_pg(session, new, changed)
        else:
            self._write_sqlite(session, new, changed)

    def _lines(self, rows: Sequence[_Judged]) -> Iterator[str]:
        shared = self._shared
        null = "\\N"
        for uid, v, member_id, digest, _ in rows:
            yield f"{uid}\t{null if member_id is None else member_id}\t{digest}\t{shared(v)}"

    def _write_pg(self, session: Session, new: Sequence[_Judged], changed: Sequence[_Judged]) -> None:
        columns = ", ".join(_TAG_COLUMNS)
        if new:
            _copy_lines(session, f"COPY unit_tags ({columns}) FROM STDIN", self._lines(new))
        if changed and len(changed) <= self.few_rows:
            self._update_few(session, changed)
        elif changed:
            session.execute(text("CREATE TEMP TABLE tag_stage (LIKE unit_tags) ON COMMIT DROP"))
            _copy_lines(session, f"COPY tag_stage ({columns}) FROM STDIN", self._lines(changed))
            sets = ", ".join(f"{c} = s.{c}" for c in _TAG_COLUMNS[1:])
            session.execute(
                text(f"UPDATE unit_tags t SET {sets} FROM tag_stage s WHERE t.unit_id = s.unit_id")
            )
            session.execute(text("DROP TABLE tag_stage"))

    def _update_few(self, session: Session, changed: Sequence[_Judged]) -> None:
        """PostgreSQL: a few changed tags (a proof, a claim, a registration) by one
        ``UPDATE`` run for each, in one pipeline: a staging table would cost a catalog
        write per request. Values go as the text COPY would send, read by the same input
        functions."""
        sets = ", ".join(f"{c} = %s" for c in _TAG_COLUMNS[1:])
        statement = f"UPDATE unit_tags SET {sets} WHERE unit_id = %s"
        rows = [
            (member_id, digest, *map(_param_text, _shared_values(v, self.tagged_at)), uid)
            for uid, v, member_id, digest, _ in changed
        ]
        with dbapi_errors(session, statement), raw_connection(session).cursor() as cur:
            cur.executemany(statement, rows)

    def _write_sqlite(self, session: Session, new: Sequence[_Judged], changed: Sequence[_Judged]) -> None:
        table = table_of(UnitTag)
        shared = self._shared
        if new:
            insert_rows(
                session,
                table,
                _TAG_COLUMNS,
                [(uid, member_id, digest, *shared(v)) for uid, v, member_id, digest, _ in new],
            )
        if changed:
            update_rows(
                session,
                table,
                "unit_id",
                _TAG_COLUMNS[1:],
                [(uid, member_id, digest, *shared(v)) for uid, v, member_id, digest, _ in changed],
            )


def _copy_lines(session: Session, statement: str, lines: Iterable[str]) -> None:
    """PostgreSQL: COPY rows given as COPY text lines, in the session's own transaction."""
    with (
        dbapi_errors(session, statement),
        raw_connection(session).cursor() as cur,
        cur.copy(statement) as copy,
    ):
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 2000:
                copy.write("".join(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))


def _judge_units(
    session: Session, rules: Rules, unit_ids: Sequence[int], *, clear_flags: bool = False
) -> list[_Judged]:
    rows = unit_fact_rows(session, unit_ids=list(unit_ids), clear_flags=clear_flags)
    categories = {}
    for sku, title in session.execute(
        select(Product.sku, Product.title).where(Product.sku.in_({r.sku for r in rows}))
    ):
        categories[sku] = rules.catalog.classify(sku, title or "")
    judged, errors, notes = _judge(session, rows, rules, categories, Judge(rules.policies))
    if errors:
        raise PolicyError(errors[0][3])
    for unit_id, _, _, message in notes:
        log.warning(message, extra={"unit_id": unit_id})
    return judged


def verdicts_for_units(session: Session, rules: Rules, unit_ids: Sequence[int]) -> dict[int, Verdict]:
    """The live verdict of some units, computed from the store as it is now (for claim and
    proof checks: pass the verdict to :func:`vipsync.eligibility.claims.check_claim`)."""
    return {
        uid: with_member(shared, member_id)
        for uid, shared, member_id, _, _ in _judge_units(session, rules, unit_ids)
    }


def tag_units_now(session: Session, rules: Rules, unit_ids: Sequence[int]) -> dict[int, Verdict]:
    """Tag these units in the caller's transaction (a proof, a claim or a registration
    answers with the new tags); returns their verdicts."""
    if not unit_ids:
        return {}
    pg = session.get_bind().dialect.name == "postgresql"
    judged = _judge_units(session, rules, unit_ids, clear_flags=True)
    _TagWriter(_utcnow(), pg=pg).write(session, judged, TagResult(mode="now"))
    return {uid: with_member(shared, member_id) for uid, shared, member_id, _, _ in judged}


def unit_view(session: Session, *, as_of: date, **filters: Any) -> Iterator[dict[str, Any]]:
    """The units read model with the read-time statuses as of ``as_of`` (what
    ``vipsync units`` prints); ``filters`` go to :func:`vipsync.store.read_models.iter_units`."""
    return iter_units(session, as_of=as_of, statuses=unit_statuses, **filters)
