"""Ops decisions: classify a SKU (or a SKU-less line by its title), enable or disable a
policy version, optionally limited to stores and countries.

A decision is kept in the store (who, when, why) and wins over the packaged TOML files,
which stay the shipped defaults: every process reads the decisions at its next job
(:func:`with_store_decisions`, called by ``load_rules``), so no setting has to follow the
decision around. After a decision only the units it can change are re-tagged: they are
flagged ``needs_tag`` and ``tag_pending`` runs (inline, or enqueued by the workers).

A dry run judges those units under the new rules without writing anything and reports how
many would change status, which ones, the ``benefit_status`` before/after matrix, the
number of changed windows, and the claimed units apart: claims stay under the version
they were recorded with, so a policy decision never re-tags a claimed unit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vipsync.eligibility.catalog import CLASSIFIED, normalize_sku, title_key
from vipsync.eligibility.engine import Verdict
from vipsync.eligibility.policy import PolicySet
from vipsync.errors import ConfigError, PolicyError
from vipsync.store import decisions as store_decisions
from vipsync.store.models import Claim, Order, Unit, UnitTag
from vipsync.store.sql import in_values

__all__ = [
    "DecisionResult",
    "UnitChange",
    "classify",
    "policy_table",
    "set_policy",
    "with_store_decisions",
]

log = logging.getLogger(__name__)

LISTED_CHANGES = 200  # the units a result lists by id (the counts cover them all)
_WINDOWS = ("original_warranty_end", "registration_deadline", "extended_warranty_end", "trade_in_opens")


def _now() -> datetime:
    return datetime.now(UTC)


def apply_policy_overrides(
    policies: PolicySet, overrides: dict[str, store_decisions.PolicyOverride]
) -> PolicySet:
    """The shipped versions with the store's decisions on top (a decision on a version no
    file defines any more is ignored)."""
    out = []
    for p in policies.policies:
        o = overrides.get(p.version)
        if o is None:
            out.append(p)
            continue
        update_: dict[str, Any] = {"enabled": o.enabled}
        if o.stores is not None:
            update_["stores"] = frozenset(o.stores)
        if o.countries is not None:
            update_["countries"] = frozenset(o.countries)
        out.append(p.model_copy(update=update_))
    return PolicySet(tuple(out))


def with_store_decisions(ctx, rules, session: Session | None = None):
    """``rules`` (a :class:`vipsync.workers.tagging.Rules` from the files) with the ops
    decisions of the store applied."""
    if session is None:
        with ctx.session_factory() as own:
            return with_store_decisions(ctx, rules, own)
    skus, titles = store_decisions.latest_catalog_decisions(session)
    overrides = store_decisions.latest_policy_decisions(session)
    if not (skus or titles or overrides):
        return rules
    return dataclasses.replace(
        rules,
        catalog=rules.catalog.with_decisions(skus, titles),
        policies=apply_policy_overrides(rules.policies, overrides),
    )


@dataclass(frozen=True)
class UnitChange:
    """One unit whose tag a decision changes (no personal data)."""

    unit_id: int
    store: str
    order_id: str
    sku: str
    category_before: str | None
    category_after: str
    benefit_before: str | None
    benefit_after: str | None
    eligible_before: bool | None
    eligible_after: bool
    version_before: str | None
    version_after: str
    windows_changed: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DecisionResult:
    """What a decision did (or, in a dry run, would do)."""

    decision: str
    dry_run: bool
    affected_units: int = 0  # units the decision can change (re-tagged)
    changed_units: int = 0  # of those, units whose status or windows change
    windows_changed: int = 0
    benefit_matrix: dict[str, int] = field(default_factory=dict)  # "before -> after": units
    changes: list[UnitChange] = field(default_factory=list)  # the first LISTED_CHANGES
    claimed_units: list[int] = field(default_factory=list)  # left as they are, listed apart
    tagged: dict[str, Any] | None = None  # the re-tag's counts (not in a dry run)
    decision_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "dry_run": self.dry_run,
            "decision_id": self.decision_id,
            "affected_units": self.affected_units,
            "changed_units": self.changed_units,
            "windows_changed": self.windows_changed,
            "benefit_matrix": self.benefit_matrix,
            "changes": [c.as_dict() for c in self.changes],
            "claimed_units": self.claimed_units,
            "tagged": self.tagged,
        }


def _decided_by(who: str) -> str:
    who = (who or "").strip()
    if not who:
        raise ConfigError("who decides: a name is required (the CLI user or the API token's name)")
    return who[:64]


def classify(
    ctx,
    key: str,
    category: str,
    *,
    by_title: bool = False,
    note: str = "",
    decided_by: str,
    dry_run: bool = False,
) -> DecisionResult:
    """Classify the SKU ``key`` (or, ``by_title``, the order lines without a SKU titled
    ``key``) as ``category``; re-tag its units."""
    if category not in CLASSIFIED:
        raise ConfigError(f"category: {category!r} is not one of {', '.join(CLASSIFIED)}")
    sku = "" if by_title else normalize_sku(key)
    tkey = title_key(key) if by_title else ""
    if not sku and not tkey:
        raise ConfigError("sku: empty (for order lines without a SKU, classify by --title)")
    if "\x00" in sku or "\x00" in tkey:  # PostgreSQL text cannot hold NUL: no SKU or title has one
        raise ConfigError(f"{'title' if by_title else 'sku'}: contains a NUL character")
    if len(sku) > 255:
        raise ConfigError("sku: longer than 255 characters (the longest SKU a store may send)")
    who = _decided_by(decided_by)
    label = f"classify {'title ' + repr(key) if by_title else sku} as {category}"
    from vipsync.workers.tagging import load_rules

    rules = load_rules(ctx)
    new_rules = dataclasses.replace(
        rules,
        catalog=rules.catalog.with_decisions(
            {sku: category} if sku else {}, {tkey: category} if tkey else {}
        ),
    )
    with ctx.session_factory() as session:
        unit_ids = _units_of(session, sku=sku, tkey=tkey)
        result = _preview(session, new_rules, unit_ids, label=label, dry_run=dry_run, keep_claimed=False)
        if dry_run:
            return result
        row = store_decisions.record_catalog_decision(
            session, sku=sku, title_key=tkey, category=category, note=note, decided_by=who, now=_now()
        )
        result.decision_id = row.id
        _flag(session, unit_ids)
        session.commit()
    log.info("catalog decision", extra={"decision_id": result.decision_id, "units": len(unit_ids)})
    result.tagged = _retag(ctx)
    return result


def _units_of(session: Session, *, sku: str, tkey: str) -> list[int]:
    """The live units of a SKU (SKUs compare upper-cased), or of SKU-less lines by title."""
    if sku:
        q = select(Unit.id).where(func.upper(Unit.sku) == sku, Unit.removed.is_(False))
        return sorted(session.execute(q).scalars())
    rows = session.execute(select(Unit.id, Unit.title).where(Unit.sku == "", Unit.removed.is_(False)))
    return sorted(uid for uid, title in rows if title_key(title or "") == tkey)


def set_policy(
    ctx,
    version: str,
    *,
    enabled: bool,
    stores: Sequence[str] | None = None,
    countries: Sequence[str] | None = None,
    note: str = "",
    decided_by: str,
    dry_run: bool = False,
) -> DecisionResult:
    """Enable or disable a policy version (optionally limited to ``stores`` and
    ``countries``); re-tag the unclaimed units whose judging version changes."""
    from vipsync.workers.tagging import load_rules

    who = _decided_by(decided_by)
    rules = load_rules(ctx)
    current = rules.policies.get(version)  # raises PolicyError naming an unknown version
    known_stores = {s.key for s in ctx.stores}
    store_list = sorted({s.strip() for s in stores}) if stores else None
    if store_list is not None:
        unknown = [s for s in store_list if s not in known_stores]
        if unknown:
            raise ConfigError(f"--store: unknown store key(s) {', '.join(unknown)}")
    country_list = sorted({c.strip().upper() for c in countries}) if countries else None
    update_: dict[str, Any] = {"enabled": enabled}
    if store_list is not None:
        update_["stores"] = frozenset(store_list)
    if country_list is not None:
        update_["countries"] = country_list
    try:
        changed = current.model_validate({**current.model_dump(), **update_})
    except Exception as exc:  # pydantic's error, one line
        raise PolicyError(f"policy {version}: {str(exc).splitlines()[-1].strip()}") from None
    policies = PolicySet(tuple(changed if p.version == version else p for p in rules.policies.policies))
    if not policies.enabled:
        raise PolicyError(f"disabling {version} would leave no enabled policy version")
    new_rules = dataclasses.replace(rules, policies=policies)
    label = f"{'enable' if enabled else 'disable'} {version}"
    if store_list:
        label += f" for stores {','.join(store_list)}"
    if country_list:
        label += f" for countries {','.join(country_list)}"
    with ctx.session_factory() as session:
        unit_ids = _units_switching_version(session, rules.policies, policies)
        result = _preview(session, new_rules, unit_ids, label=label, dry_run=dry_run, keep_claimed=True)
        if dry_run:
            return result
        row = store_decisions.record_policy_decision(
            session,
            version=version,
            enabled=enabled,
            stores=store_list,
            countries=country_list,
            note=note,
            decided_by=who,
            now=_now(),
        )
        result.decision_id = row.id
        claimed = set(result.claimed_units)
        _flag(session, [u for u in unit_ids if u not in claimed])
        session.commit()
    log.info("policy decision", extra={"decision_id": result.decision_id, "units": result.affected_units})
    result.tagged = _retag(ctx)
    return result


def _selection(policies: PolicySet, day: date, store: str, country: str | None) -> str:
    try:
        return policies.select(day, store_key=store, country=country).version
    except PolicyError as exc:
        return f"error: {exc}"


def _units_switching_version(session: Session, old: PolicySet, new: PolicySet) -> list[int]:
    """The units whose judging version differs between ``old`` and ``new``: the version
    depends only on (purchase date, store, country), so those groups are compared first."""
    groups = session.execute(select(Order.purchase_date, Order.store_key, Order.country).distinct()).all()
    switching = {(d, s, c) for d, s, c in groups if _selection(old, d, s, c) != _selection(new, d, s, c)}
    if not switching:
        return []
    out: list[int] = []
    q = (
        select(Unit.id, Order.purchase_date, Order.store_key, Order.country)
        .join(Order, Order.id == Unit.order_id)
        .where(Unit.removed.is_(False))
        .execution_options(yield_per=10_000)
    )
    for uid, d, s, c in session.execute(q):
        if (d, s, c) in switching:
            out.append(uid)
    return sorted(out)


def _chunks(values: Sequence[int], size: int = 2000) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _windows(v: Any) -> tuple[date | None, ...]:
    return tuple(getattr(v, w) for w in _WINDOWS)


def _preview(
    session: Session, rules, unit_ids: list[int], *, label: str, dry_run: bool, keep_claimed: bool
) -> DecisionResult:
    """Judge ``unit_ids`` under ``rules`` and compare with their stored tags."""
    from vipsync.workers.tagging import verdicts_for_units

    pg = session.get_bind().dialect.name == "postgresql"
    result = DecisionResult(decision=label, dry_run=dry_run)
    matrix: Counter[str] = Counter()
    for chunk in _chunks(unit_ids):
        claimed = set()
        if keep_claimed:
            claimed = set(
                session.execute(
                    select(Claim.unit_id).where(in_values(Claim.unit_id, list(chunk), pg=pg))
                ).scalars()
            )
            result.claimed_units.extend(sorted(claimed))
        todo = [u for u in chunk if u not in claimed]
        if not todo:
            continue
        result.affected_units += len(todo)
        verdicts: dict[int, Verdict] = verdicts_for_units(session, rules, todo)
        tags = {
            t.unit_id: t
            for t in session.execute(select(UnitTag).where(in_values(UnitTag.unit_id, todo, pg=pg))).scalars()
        }
        info = {
            r.id: r
            for r in session.execute(
                select(Unit.id, Unit.store_key, Unit.order_external_id, Unit.sku).where(
                    in_values(Unit.id, todo, pg=pg)
                )
            )
        }
        for uid in todo:
            v = verdicts[uid]
            t = tags.get(uid)
            before = (
                (t.benefit_status, bool(t.eligible), t.policy_version, t.category, tuple(t.reasons or ()))
                if t is not None
                else (None, None, None, None, None)
            )
            windows = sum(
                1 for a, b in zip(_windows(t) if t else (None,) * 4, _windows(v), strict=True) if a != b
            )
            after = (v.benefit_status, v.eligible, v.policy_version, v.category, tuple(v.reasons))
            if before == after and windows == 0 and t is not None:
                continue
            result.changed_units += 1
            result.windows_changed += windows
            matrix[f"{before[0] or 'untagged'} -> {v.benefit_status or 'none'}"] += 1
            if len(result.changes) < LISTED_CHANGES:
                u = info[uid]
                result.changes.append(
                    UnitChange(
                        unit_id=uid,
                        store=u.store_key,
                        order_id=u.order_external_id,
                        sku=u.sku,
                        category_before=before[3],
                        category_after=v.category,
                        benefit_before=before[0],
                        benefit_after=v.benefit_status,
                        eligible_before=before[1],
                        eligible_after=v.eligible,
                        version_before=before[2],
                        version_after=v.policy_version,
                        windows_changed=windows,
                    )
                )
        session.expunge_all()
    result.benefit_matrix = dict(sorted(matrix.items()))
    if dry_run:
        session.rollback()
    return result


def _flag(session: Session, unit_ids: Sequence[int]) -> None:
    pg = session.get_bind().dialect.name == "postgresql"
    for chunk in _chunks(unit_ids, 5000):
        session.execute(
            update(Unit)
            .where(in_values(Unit.id, list(chunk), pg=pg))
            .values(needs_tag=True)
            .execution_options(synchronize_session=False)
        )


def _retag(ctx) -> dict[str, Any] | None:
    """Start ``tag_pending`` after the decision's commit: inline (the embedded default, the
    counts come back) or enqueued for the workers."""
    outcome = ctx.dispatch("tag_pending")
    return outcome.as_dict() if hasattr(outcome, "as_dict") else None


def policy_table(ctx) -> list[dict[str, Any]]:
    """Every policy version as the processes see it now: the file's settings with the
    store's latest decision on top."""
    from vipsync.eligibility.loader import load_policies

    shipped = load_policies(ctx.settings.policies_dir)
    with ctx.session_factory() as session:
        overrides = store_decisions.latest_policy_decisions(session)
    effective = apply_policy_overrides(shipped, overrides)
    rows = []
    for p in sorted(effective.policies, key=lambda p: p.effective_from):
        o = overrides.get(p.version)
        rows.append(
            {
                "version": p.version,
                "effective_from": p.effective_from.isoformat(),
                "enabled": p.enabled,
                "retroactive": p.retroactive,
                "stores": sorted(p.stores) or None,
                "countries": sorted(p.countries) or None,
                "decided_by": o.decided_by if o else "shipped file",
                "decided_at": o.decided_at.isoformat(timespec="seconds") if o else None,
                "note": o.note if o else "",
            }
        )
    return rows
