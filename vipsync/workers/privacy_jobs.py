"""Privacy requests as jobs: Shopify's compliance webhooks and ops' own requests.

Every request is recorded in ``privacy_requests`` (kind, store, the source's customer id,
the subject's keyed e-mail digest, counts; never an address) and carried out through
``vipsync.store.erasure``, in one transaction with its record:

- ``customers/redact``: the customer's e-mail (kept by the webhook as its keyed digest) and
  the orders Shopify names are erased (``erase_digests`` plus the named orders);
- ``shop/redact``: every order of the shop is erased (``erase_store``);
- ``customers/data_request``: recorded; ``vipsync pii data-request --request ID`` writes
  what the store holds for ops to send (``person_data``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import select

from vipsync.config.stores import ShopifyShop
from vipsync.connectors.minimize import stored_email_digest
from vipsync.errors import ConfigError, StoreError
from vipsync.store.db import purge_freed_pages
from vipsync.store.erasure import (
    ErasureReport,
    erase_digests,
    erase_person,
    erase_store,
    person_data,
    person_data_by_digests,
    redact_orders,
)
from vipsync.store.models import PrivacyRequest
from vipsync.store.repository import utcnow

__all__ = ["data_request_export", "erase_email", "handle_compliance"]

log = logging.getLogger(__name__)

_KINDS = {
    "customers/redact": "customers_redact",
    "customers/data_request": "customers_data_request",
    "shop/redact": "shop_redact",
}


def _subject_digests(ctx, digest: str | None, key_id: str | None) -> list[str]:
    if not digest:
        return []
    out = [digest]
    if key_id != ctx.digester.key_id:
        with contextlib.suppress(ConfigError):  # under an unknown key: matches nothing newer
            out.append(ctx.digester.rekey(digest, key_id))
    return out


def _id_text(value: Any) -> str | None:
    """A Shopify id (digits, as a number or text), else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return text if text.isdigit() and len(text) <= 20 else None


def _order_ids(value: Any) -> list[str]:
    """The order ids a compliance payload names; anything that is not an id is ignored
    (and counted in the request's report)."""
    if not isinstance(value, list):
        return []
    return [t for t in (_id_text(v) for v in value[:10_000]) if t is not None]


def handle_compliance(ctx, shop: ShopifyShop, topic: str, payload: Any, delivery_id: int | None) -> str:
    """Carry out one compliance webhook; returns the delivery's status (``done``)."""
    body = payload if isinstance(payload, dict) else {}
    customer: dict = body["customer"] if isinstance(body.get("customer"), dict) else {}
    digest, key_id = stored_email_digest(body, ctx.digester)
    named = body.get("orders_to_redact") or body.get("orders_requested") or []
    order_ids = _order_ids(named)
    ignored = (len(named) if isinstance(named, list) else 1) - len(order_ids)
    now = utcnow()
    with ctx.session_factory() as session:
        request = PrivacyRequest(
            kind=_KINDS.get(topic, topic.replace("/", "_")),
            origin="webhook",
            store_key=shop.key,
            customer_id=_id_text(customer.get("id")),
            subject_digest=digest,
            subject_key_id=key_id,
            delivery_id=delivery_id,
            status="received",
            report={"orders_named": order_ids[:1000], "ids_ignored": ignored},
            requested_at=now,
        )
        session.add(request)
        if topic == "customers/redact":
            report = erase_digests(session, _subject_digests(ctx, digest, key_id))
            report += redact_orders(session, shop.key, order_ids)
            request.report = report.as_dict() | {"orders_named": order_ids[:1000], "ids_ignored": ignored}
            request.status, request.completed_at = "done", utcnow()
        elif topic == "shop/redact":
            request.report = erase_store(session, shop.key).as_dict()
            request.status, request.completed_at = "done", utcnow()
        # customers/data_request stays "received" until ops export it; a request carried
        # out forgets whom it was about (the digest is personal data too).
        if request.status == "done":
            request.subject_digest = request.subject_key_id = None
        session.commit()
        if request.status == "done":
            purge_freed_pages(ctx.engine)
        log.info(
            "privacy request recorded",
            extra={
                "store": shop.key,
                "kind": request.kind,
                "request_id": request.id,
                "status": request.status,
            },
        )
    return "done"


def erase_email(ctx, email: str, *, origin: str = "cli") -> tuple[int, ErasureReport]:
    """Erase one person by e-mail address (ops, member erasure); (request id, report)."""
    with ctx.session_factory() as session:
        report = erase_person(session, ctx.digester, email)
        request = PrivacyRequest(
            kind="erase",
            origin=origin,
            status="done",
            report=report.as_dict(),
            requested_at=utcnow(),
            completed_at=utcnow(),
        )
        session.add(request)
        session.commit()
        purge_freed_pages(ctx.engine)
        return request.id, report


def data_request_export(ctx, *, email: str | None = None, request_id: int | None = None) -> dict[str, Any]:
    """What the store holds about a person, by address or by a recorded data request; a
    recorded request is marked done."""
    with ctx.session_factory() as session:
        if request_id is not None:
            request = session.execute(
                select(PrivacyRequest).where(PrivacyRequest.id == int(request_id))
            ).scalar_one_or_none()
            if request is None:
                raise StoreError(f"privacy request {request_id}: not found")
            if request.kind != "customers_data_request":
                raise StoreError(f"privacy request {request_id}: a {request.kind}, not a data request")
            data = person_data_by_digests(
                session, _subject_digests(ctx, request.subject_digest, request.subject_key_id)
            )
            named = set((request.report or {}).get("orders_named") or [])
            data["orders_named_by_the_request"] = sorted(named)
            request.status, request.completed_at = "done", utcnow()
            request.subject_digest = request.subject_key_id = None
            session.commit()
            return data
        if not email:
            raise StoreError("a data request needs --email or --request")
        data = person_data(session, ctx.digester, email)
        session.add(
            PrivacyRequest(
                kind="data_request",
                origin="cli",
                status="done",
                report={"members": len(data["members"]), "orders": len(data["orders"])},
                requested_at=utcnow(),
                completed_at=utcnow(),
            )
        )
        session.commit()
        return data
