"""Proof of purchase: an order identifier and a second factor link an order to a member.

The job (:func:`verify_proof`) is the same for the API and the CLI:
1. the member's e-mail must be an active member's ("register first" otherwise, which
   says nothing about orders);
2. the identifier is normalized and looked up in the official stores (Shopify by name in
   every shop, or the one named; Amazon by order id); an order not stored yet is fetched
   on demand through ``fetch`` (stored through the normal write path);
3. every order whose factor matches is verified: linked to the member unless another
   member owns it, its units re-tagged in the same transaction;
4. every refusal of an order and factor (unknown order, wrong factor, no postal code) is
   the same outcome, ``refused``; a source that is down makes it ``try_later``;
5. each decision is stored (time, client, order, method, outcome, reason), without
   personal data.

Timing (the refusal's minimum delay) and rate limits belong to the caller (the API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from vipsync.connectors.records import OrderRecord, normalize_country
from vipsync.eligibility.membership import is_active_member
from vipsync.eligibility.proof import (
    REFUSED,
    OrderReference,
    factor_matches,
    normalize_postal_code,
    parse_order_reference,
    shopify_names,
)
from vipsync.errors import RecordError, TransientSourceError
from vipsync.store.customers import (
    OrderFacts,
    find_orders,
    link_order,
    member_and_orders,
    order_unit_answers,
    record_decision,
)
from vipsync.store.writer import write_page
from vipsync.workers.members import email_digest_of
from vipsync.workers.tagging import cached_rules, tag_units_now

__all__ = [
    "OTHER_MEMBER",
    "REGISTER_FIRST",
    "TRY_LATER",
    "Fetcher",
    "ProofRequest",
    "ProofResult",
    "name_affixes",
    "normalize_reference",
    "verify_proof",
]

log = logging.getLogger(__name__)

REGISTER_FIRST = "register first: this e-mail is not an active VIP member"
TRY_LATER = "the store cannot be reached right now: try again later"
OTHER_MEMBER = "already registered to another member, contact support"
METHODS = ("email", "postal_code", "invoice")

# fetch(reference, store keys) -> the orders the sources have under that reference;
# raises TransientSourceError when a source is down.
Fetcher = Callable[[OrderReference, Sequence[str]], list[OrderRecord]]


@dataclass(frozen=True)
class ProofRequest:
    """A proof as presented. Exactly one of ``order_email`` / ``postal_code`` (or an
    invoice, read beforehand into ``postal_code`` and ``invoice_dates``)."""

    order_id: str
    member_email: str
    order_email: str | None = None
    postal_code: str | None = None
    country: str | None = None
    store: str | None = None
    method: str = "email"
    invoice_dates: tuple[date, ...] = ()


@dataclass
class ProofResult:
    outcome: str  # verified | refused | register_first | try_later
    message: str
    reference: str = ""
    orders: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"verified": self.outcome == "verified", "message": self.message}
        if self.outcome == "verified":
            body["orders"] = self.orders
        return body


def _utcnow() -> datetime:
    return datetime.now(UTC)


def name_affixes(ctx) -> list[tuple[str, str]]:
    affixes = {("#", "")}
    for store in ctx.stores:
        if store.kind == "shopify":
            affixes.add((store.order_name_prefix, store.order_name_suffix))
    return sorted(affixes)


def normalize_reference(ctx, order_id: str) -> OrderReference:
    """The normalized identifier (RecordError naming ``order_id`` when it is none)."""
    if not isinstance(order_id, str):
        raise RecordError("an order number is required", field="order_id")
    try:
        return parse_order_reference(order_id, name_affixes=name_affixes(ctx))
    except Exception as exc:
        raise RecordError(str(exc).removeprefix("order_id: "), field="order_id") from None


def _stores(ctx, kind: str, store: str | None) -> list[Any]:
    found = [s for s in ctx.stores if s.kind == kind and s.official]
    if store is not None:
        found = [s for s in found if s.key == store]
    return found


def _where(ctx, ref: OrderReference, store: str | None) -> dict[str, Any]:
    """The order lookup of a reference: Shopify names per shop, or an Amazon id."""
    if ref.kind == "amazon_order_id":
        return {"amazon_id": ref.value, "amazon_stores": [s.key for s in _stores(ctx, "amazon", store)]}
    names = {
        s.key: shopify_names(ref.value, [(s.order_name_prefix, s.order_name_suffix)])
        for s in _stores(ctx, "shopify", store)
    }
    return {"names": names}


def _invoice_date_ok(order: OrderFacts, dates: Sequence[date]) -> bool:
    return any(abs((d - order.purchase_date).days) <= 1 for d in dates)


def _matches(ctx, order: OrderFacts, req: ProofRequest, factor_hash: str | None) -> bool:
    if req.method == "email":
        return factor_matches(
            order_email_hash=order.email_hash, order_postal_code=None, factor_email_hash=factor_hash
        )
    if req.method == "invoice" and not _invoice_date_ok(order, req.invoice_dates):
        return False
    if req.method == "invoice":
        # The invoice's text must contain the order's own postal code.
        return bool(order.postal_code) and normalize_postal_code(order.postal_code, order.country) in (
            req.postal_code or ""
        )
    return factor_matches(
        order_email_hash=None,
        order_postal_code=order.postal_code,
        order_country=order.country,
        factor_postal_code=req.postal_code,
        factor_country=req.country,
    )


def verify_proof(
    ctx,
    req: ProofRequest,
    *,
    client: str,
    fetch: Fetcher | None = None,
    now: datetime | None = None,
) -> ProofResult:
    """Judge one proof of purchase (see the module docstring)."""
    now = now or _utcnow()
    if req.method not in METHODS:
        raise RecordError(f"one of {', '.join(METHODS)}", field="method")
    member_hash = email_digest_of(ctx, req.member_email, field="member_email")
    ref = normalize_reference(ctx, req.order_id)
    factor_hash = None
    if req.method == "email":
        factor_hash = email_digest_of(ctx, req.order_email or "", field="order_email")
    elif req.method == "postal_code" and (
        not isinstance(req.postal_code, str)
        or not normalize_postal_code(req.postal_code)
        or len(req.postal_code) > 32
    ):
        raise RecordError("a postal code of 1 to 32 characters", field="postal_code")
    country = normalize_country(req.country) if req.country is not None else None
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise RecordError("an ISO 3166-1 alpha-2 country code", field="country")
    req = ProofRequest(**{**req.__dict__, "country": country})
    if req.store is not None and req.store not in {s.key for s in ctx.stores if s.official}:
        raise RecordError("not an official store", field="store")

    # Reads and decision rows in autocommit: each is one statement, and nothing they do
    # needs another's transaction, so a proof that links nothing costs no BEGIN and no
    # COMMIT round trip. Links and re-tags go in one transaction of their own.
    conn = _autocommit(ctx)
    try:
        member, orders = member_and_orders(conn, member_hash, **_where(ctx, ref, req.store))
        if (
            member is None
            or member.erased_at is not None
            or not is_active_member(member.registered_at, member.exited_at)
        ):
            record_decision(
                conn,
                client=client,
                method=req.method,
                outcome="register_first",
                reason="not an active member",
                now=now,
            )
            return ProofResult("register_first", REGISTER_FIRST, ref.value)
        member_id = int(member.id)

        if not orders and fetch is not None:
            conn.close()  # no connection is held while a source answers
            kind = "amazon" if ref.kind == "amazon_order_id" else "shopify"
            keys = [s.key for s in _stores(ctx, kind, req.store)]
            try:
                records = fetch(ref, keys)
            except TransientSourceError as exc:
                log.warning(
                    "on-demand fetch failed",
                    extra={"reference_kind": ref.kind, "error": type(exc).__name__},
                )
                conn = _autocommit(ctx)
                record_decision(
                    conn,
                    client=client,
                    method=req.method,
                    outcome="try_later",
                    reason=f"source down: {type(exc).__name__}",
                    now=now,
                    member_id=member_id,
                )
                return ProofResult("try_later", TRY_LATER, ref.value)
            for rec in records:  # the normal write path: a bad record is rejected alone, for ops
                source = "shopify" if rec.source == "shopify" else "amazon-api"
                write_page(ctx.session_factory, [rec], source=source, store_key=rec.store_key)
            conn = _autocommit(ctx)
            if records:
                orders = find_orders(conn, **_where(ctx, ref, req.store))

        matched = [o for o in orders if _matches(ctx, o, req, factor_hash)]
        if not matched:
            reason = "unknown order" if not orders else "factor does not match"
            for o in orders or [None]:  # type: ignore[list-item]
                record_decision(
                    conn,
                    client=client,
                    method=req.method,
                    outcome="refused",
                    reason=reason,
                    now=now,
                    order_id=o.id if o else None,
                    store_key=o.store_key if o else None,
                    member_id=member_id,
                )
            return ProofResult("refused", REFUSED, ref.value)
        if all(_settled(o, member_id) for o in matched):
            answers = [_decided(conn, o, _status(o, member_id), req, member_id, client, now) for o in matched]
        else:
            conn.close()
            with ctx.session_factory() as session:
                answers = [_verified(ctx, session, o, req, member_id, client, now) for o in matched]
                session.commit()
    finally:
        conn.close()
    message = "proof of purchase verified"
    if all(a["status"] == "other_member" for a in answers):
        message = OTHER_MEMBER
    return ProofResult("verified", message, ref.value, answers)


def _autocommit(ctx) -> Connection:
    """A pooled connection whose every statement commits on its own."""
    return ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _status(o: OrderFacts, member_id: int) -> tuple[str, str]:
    if o.owner is not None and o.owner != member_id:
        return "other_member", OTHER_MEMBER
    if o.owner == member_id:
        return "already_yours", "verified again: this order is already linked to you"
    return "linked", "proof of purchase verified: the order is linked to you"


def _settled(o: OrderFacts, member_id: int) -> bool:
    """Nothing to write for this order but the decision: another member's, or already this
    member's with every unit's tag current (read with the order)."""
    status, _ = _status(o, member_id)
    return status == "other_member" or (status == "already_yours" and o.answers is not None and o.answers[1])


def _decided(
    db: Session | Connection,
    o: OrderFacts,
    outcome: tuple[str, str],
    req: ProofRequest,
    member_id: int,
    client: str,
    now: datetime,
    units: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Record the decision on one matched order; its entry in the answer (with ``units``,
    else the ones read with the order, unless another member owns it)."""
    status, message = outcome
    record_decision(
        db,
        client=client,
        method=req.method,
        outcome=status,
        reason=message,
        now=now,
        order_id=o.id,
        store_key=o.store_key,
        member_id=member_id,
    )
    entry: dict[str, Any] = {"store": o.store_key, "order": o.name, "status": status, "message": message}
    if status != "other_member":
        entry["units"] = units if units is not None else (o.answers or ([], True))[0]
    return entry


def _verified(
    ctx, session: Session, o: OrderFacts, req: ProofRequest, member_id: int, client: str, now: datetime
) -> dict[str, Any]:
    """Link one matched order (unless it has an owner), record the decision, and answer its
    units with their tags; the units are re-tagged only when the link is new or a tag is
    not current."""
    status, message = _status(o, member_id)
    if status == "other_member":
        return _decided(session, o, (status, message), req, member_id, client, now)
    if status == "linked":
        link_order(session, order_id=o.id, member_id=member_id, method=req.method, now=now)
    # Read with the order by member_and_orders; read now after an on-demand fetch.
    units, current = o.answers if o.answers is not None else order_unit_answers(session, o.id)
    if status == "linked" or not current:
        tag_units_now(session, cached_rules(ctx, session=session), [u["unit_id"] for u in units])
        units, _ = order_unit_answers(session, o.id)
    return _decided(session, o, (status, message), req, member_id, client, now, units)


def recent_decisions(ctx, *, limit: int = 50, since: datetime | None = None) -> list[dict[str, Any]]:
    """The latest proof decisions, newest first (``vipsync proofs list``)."""
    from vipsync.store.models import ProofDecision

    with ctx.session_factory() as session:
        q = (
            select(ProofDecision)
            .order_by(ProofDecision.decided_at.desc(), ProofDecision.id.desc())
            .limit(limit)
        )
        if since is not None:
            q = q.where(ProofDecision.decided_at >= since)
        return [
            {
                "id": d.id,
                "decided_at": d.decided_at.isoformat(),
                "client": d.client,
                "store": d.store_key,
                "order": d.order_id,
                "member": d.member_id,
                "method": d.method,
                "outcome": d.outcome,
                "reason": d.reason,
            }
            for d in session.execute(q).scalars()
        ]
