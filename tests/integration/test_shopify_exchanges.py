"""Shopify exchanges and order edits (POLICY.md, "Shopify exchanges and edits"): a unit
added in place of a returned one takes over its purchase date and claim; an added unit
with nothing returned is a new purchase of the edit's day; whichever way the edit and the
order's new version arrive. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from vipsync.connectors.records import MemberRecord, OrderFact, email_digest
from vipsync.connectors.shopify.exchanges import edit_facts
from vipsync.devtools.factories import order_record
from vipsync.store.models import Claim, Unit, UnitTag
from vipsync.store.repository import Repository
from vipsync.workers.tagging import tag_pending

EMAIL = "member@example.com"
BOUGHT = datetime(2024, 1, 10, 17, 0, tzinfo=UTC)
LATER = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


def _edit(order_id: str, *, edit_id: int, created_at: str, additions: list, removals: list) -> dict:
    """An ``orders/edited`` delivery, with every field of Shopify's payload."""
    return {
        "order_edit": {
            "id": edit_id,
            "app_id": None,
            "created_at": created_at,
            "notify_customer": False,
            "order_id": order_id,
            "staff_note": "",
            "user_id": None,
            "line_items": {"additions": additions, "removals": removals},
            "discounts": {"line_item": {"additions": [], "removals": []}},
            "shipping_lines": {"additions": [], "removals": []},
        }
    }


def _facts(payload: dict, ctx) -> list[OrderFact]:
    items = edit_facts(payload, ctx.stores.shopify("shopify-us"))
    assert all(isinstance(i, OrderFact) for i in items), items
    return items  # type: ignore[return-value]


def _write(ctx, *, orders=(), facts=(), members=()) -> None:
    with ctx.session_factory() as s:
        repo = Repository(s)
        if members:
            repo.upsert_members(members)
        if orders:
            repo.upsert_orders(orders)
        if facts:
            repo.record_facts(facts)
        s.commit()


def _arrive(ctx, order, facts, *, edit_first: bool) -> None:
    """The order's new version and the edit's facts, in the order given, tagged after each."""
    steps = [{"facts": facts}, {"orders": [order]}]
    for step in steps if edit_first else steps[::-1]:
        _write(ctx, **step)
        tag_pending(ctx)


def _tags(ctx, order_id: str) -> dict[tuple[str, int], UnitTag]:
    with ctx.session_factory() as s:
        rows = s.execute(
            select(Unit, UnitTag)
            .join(UnitTag, UnitTag.unit_id == Unit.id)
            .where(Unit.order_external_id == order_id)
        ).all()
        return {(u.sku, u.ordinal): t for u, t in rows}


def _claim(ctx, order_id: str, sku: str) -> None:
    with ctx.session_factory() as s:
        uid = s.execute(
            select(Unit.id).where(Unit.order_external_id == order_id, Unit.sku == sku)
        ).scalar_one()
        s.add(
            Claim(unit_id=uid, kind="exchange", claimed_on=date(2025, 2, 1), policy_version="v1",
                  created_at=datetime(2025, 2, 1, tzinfo=UTC))
        )  # fmt: skip
        s.get(Unit, uid).needs_tag = True  # as the claim workers do
        s.commit()


@pytest.mark.parametrize("edit_first", [False, True])
def test_a_unit_exchanged_by_an_edit_takes_over_the_returned_units_date_and_claim(context, edit_first):
    member = MemberRecord(email_hash=email_digest(EMAIL), registered_at=date(2024, 2, 1))
    before = order_record(1, purchased_at=BOUGHT, email=EMAIL, lines=(("HKS0401A3U", 1),))
    _write(context, orders=[before], members=[member])
    tag_pending(context)
    _claim(context, before.external_id, "HKS0401A3U")
    tag_pending(context)
    assert _tags(context, before.external_id)[("HKS0401A3U", 1)].benefit_status == "exchange_used"
    # The edit returns the HKS0401A3U unit and adds an HKS0802A1U in its place.
    after = order_record(
        1, purchased_at=BOUGHT, updated_at=LATER, email=EMAIL, lines=(("HKS0401A3U", 0), ("HKS0802A1U", 1))
    )
    edit = _facts(
        _edit(
            before.external_id,
            edit_id=78912328,
            created_at="2025-03-01T10:00:00-05:00",
            additions=[{"id": after.lines[1].line_key, "delta": 1}],
            removals=[{"id": after.lines[0].line_key, "delta": 1}],
        ),
        context,
    )
    _arrive(context, after, edit, edit_first=edit_first)
    tags = _tags(context, before.external_id)
    added, returned = tags[("HKS0802A1U", 1)], tags[("HKS0401A3U", 1)]
    assert added.purchase_date == date(2024, 1, 10)
    assert added.original_warranty_end == date(2025, 1, 10)
    assert added.benefit_status == "exchange_used"  # the claim moved with the unit
    assert added.extended_warranty_end == date(2027, 1, 10)
    assert not returned.valid_purchase and returned.original_warranty_end is None


@pytest.mark.parametrize("edit_first", [False, True])
def test_a_unit_an_edit_adds_without_returning_one_is_a_purchase_of_the_edits_day(context, edit_first):
    before = order_record(2, purchased_at=BOUGHT, lines=(("HKS0401A3U", 1),))
    _write(context, orders=[before])
    tag_pending(context)
    after = order_record(
        2, purchased_at=BOUGHT, updated_at=LATER, lines=(("HKS0401A3U", 1), ("HKS0802A1U", 2))
    )
    edit = _facts(
        _edit(
            before.external_id,
            edit_id=78912329,
            created_at="2024-06-15T23:30:00-04:00",  # 16 June in UTC, 15 June in the shop's zone (Los Angeles)
            additions=[{"id": after.lines[1].line_key, "delta": 2}],
            removals=[],
        ),
        context,
    )
    _arrive(context, after, edit, edit_first=edit_first)
    tags = _tags(context, before.external_id)
    assert tags[("HKS0401A3U", 1)].purchase_date == date(2024, 1, 10)
    for n in (1, 2):
        assert tags[("HKS0802A1U", n)].purchase_date == date(2024, 6, 15)
        assert tags[("HKS0802A1U", n)].original_warranty_end == date(2025, 6, 15)


def test_an_edit_that_only_removes_units_records_nothing_and_a_malformed_one_names_its_field(context):
    shop = context.stores.shopify("shopify-us")
    removal = _edit("1000001", edit_id=1, created_at="2025-03-01T10:00:00-05:00", additions=[],
                    removals=[{"id": 1, "delta": 1}])  # fmt: skip
    assert edit_facts(removal, shop) == []
    bad = _edit("1000001", edit_id=2, created_at="2025-03-01T10:00:00-05:00",
                additions=[{"id": 5, "delta": "two"}], removals=[])  # fmt: skip
    (rejected,) = edit_facts(bad, shop)
    assert (rejected.record_id, rejected.field) == ("1000001", "order_edit.line_items.additions[0].delta")


def test_an_edit_that_lowers_a_quantity_takes_the_unclaimed_unit_first(context):
    before = order_record(3, purchased_at=BOUGHT, lines=(("HKS0401A3U", 3),))
    _write(context, orders=[before])
    with context.session_factory() as s:
        top = s.execute(
            select(Unit).where(Unit.order_external_id == before.external_id, Unit.ordinal == 3)
        ).scalar_one()
        s.add(Claim(unit_id=top.id, kind="exchange", claimed_on=date(2025, 2, 1), policy_version="v1",
                    created_at=datetime(2025, 2, 1, tzinfo=UTC)))  # fmt: skip
        s.commit()
    lowered = order_record(3, purchased_at=BOUGHT, updated_at=LATER, lines=(("HKS0401A3U", 1),))
    _write(context, orders=[lowered])
    with context.session_factory() as s:
        removed = dict(
            s.execute(
                select(Unit.ordinal, Unit.removed).where(Unit.order_external_id == before.external_id)
            ).all()
        )
    assert removed == {1: True, 2: True, 3: False}  # the claimed unit stays
    tag_pending(context)
    tags = _tags(context, before.external_id)
    assert tags[("HKS0401A3U", 3)].valid_purchase and not tags[("HKS0401A3U", 1)].valid_purchase
    # Back to two units: the lowest taken unit comes back, the claimed one stays.
    _write(context, orders=[order_record(3, purchased_at=BOUGHT, updated_at=LATER.replace(year=2026),
                                         lines=(("HKS0401A3U", 2),))])  # fmt: skip
    with context.session_factory() as s:
        live = set(
            s.execute(
                select(Unit.ordinal).where(
                    Unit.order_external_id == before.external_id, Unit.removed.is_(False)
                )
            ).scalars()
        )
    assert live == {1, 3}


def _order_flags(ctx) -> set[tuple[str, str]]:
    from sqlalchemy import text

    with ctx.session_factory() as s:
        return {(r.order_id, r.flag) for r in s.execute(text("SELECT order_id, flag FROM ops_order_flags"))}


def test_an_exchange_of_a_claimed_unit_is_not_flagged_as_a_refund_but_a_refund_after_it_is(context):
    """ops_order_flags' claimed_unit_refunded: the claim moved to the unit the exchange
    added, so nothing was refunded from under it; a later refund of a claimed unit is."""
    member = MemberRecord(email_hash=email_digest(EMAIL), registered_at=date(2024, 2, 1))
    before = order_record(1, purchased_at=BOUGHT, email=EMAIL, lines=(("HKS0401A3U", 1), ("HKS0802A1U", 1)))
    _write(context, orders=[before], members=[member])
    tag_pending(context)
    _claim(context, before.external_id, "HKS0401A3U")
    _claim(context, before.external_id, "HKS0802A1U")
    tag_pending(context)
    # The edit returns the claimed HKS0401A3U unit and adds an HKS1601A1U in its place.
    lines = (("HKS0401A3U", 0), ("HKS0802A1U", 1), ("HKS1601A1U", 1))
    after = order_record(1, purchased_at=BOUGHT, updated_at=LATER, email=EMAIL, lines=lines)
    edit = _facts(
        _edit(
            before.external_id,
            edit_id=78912330,
            created_at="2025-03-01T10:00:00-05:00",
            additions=[{"id": after.lines[2].line_key, "delta": 1}],
            removals=[{"id": after.lines[0].line_key, "delta": 1}],
        ),
        context,
    )
    _arrive(context, after, edit, edit_first=False)
    assert _tags(context, before.external_id)[("HKS1601A1U", 1)].benefit_status == "exchange_used"
    assert _order_flags(context) == set()
    # Then a refund takes the other claimed unit, which nothing replaces.
    refunded = order_record(
        1, purchased_at=BOUGHT, updated_at=datetime(2025, 4, 2, tzinfo=UTC), email=EMAIL, lines=lines,
        refunded={"HKS0802A1U": 1},
    )  # fmt: skip
    _write(context, orders=[refunded])
    tag_pending(context)
    assert _order_flags(context) == {(before.external_id, "claimed_unit_refunded")}
