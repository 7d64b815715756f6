"""The member-and-orders read of a proof of purchase carries each order's unit answers, the
same as reading them on their own (``order_unit_answers``), on both databases: units with
and without tags, a claim, several ordinary exchanges (one row each), an order without
units, and an order whose tags are out of date."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import delete, select, update

from vipsync.devtools.factories import order_record
from vipsync.store.customers import member_and_orders, order_unit_answers
from vipsync.store.models import Claim, Order, Unit, WarrantyExchange
from vipsync.store.repository import Repository
from vipsync.workers.tagging import cached_rules, tag_units_now


def test_member_and_orders_reads_the_same_answers_as_order_unit_answers(context):
    now = datetime.now(UTC)
    with context.session_factory() as session:
        Repository(session).upsert_orders(
            [
                order_record(1, lines=(("HKS0401A3U", 2), ("HKS0801A3U", 1))),
                order_record(2, lines=(("HKS0401A3U", 1),)),
                order_record(3),
            ]
        )
        session.commit()
        orders = {o.external_id: o for o in session.execute(select(Order)).scalars()}
        first = orders["1000001"]
        session.execute(delete(Unit).where(Unit.order_id == orders["1000003"].id))  # an order without units
        units = (
            session.execute(select(Unit.id).where(Unit.order_id == first.id).order_by(Unit.id))
            .scalars()
            .all()
        )
        assert len(units) == 3
        tag_units_now(session, cached_rules(context, session=session), list(units))
        session.add(
            Claim(
                unit_id=units[0],
                kind="exchange",
                claimed_on=date(2025, 3, 1),
                policy_version="v",
                created_at=now,
                ship_date=date(2025, 3, 3),
                replacement_cover_end=date(2026, 3, 3),
            )
        )
        for day in (5, 9):
            session.add(
                WarrantyExchange(
                    unit_id=units[1],
                    requested_on=date(2025, 4, day),
                    ship_date=date(2025, 4, day + 1),
                    replacement_cover_end=date(2026, 4, day + 1),
                    created_at=now,
                )
            )
        session.commit()

        by_store: dict[str, list[str]] = {}
        for o in orders.values():
            by_store.setdefault(o.store_key, []).append(o.name)
        member, found = member_and_orders(session, "0" * 64, names=by_store)
        assert member is None
        assert [o.id for o in found] == sorted(o.id for o in orders.values())
        for o in found:
            assert o.answers == order_unit_answers(session, o.id), o.external_id
        answers = {o.external_id: o.answers for o in found}

        tagged, current = answers["1000001"]
        assert current and [u["unit_id"] for u in tagged] == list(units)
        assert tagged[0]["claim"]["kind"] == "exchange"
        assert [x["requested_on"] for x in tagged[1]["warranty_exchanges"]] == ["2025-04-05", "2025-04-09"]
        untagged, current = answers["1000002"]
        assert len(untagged) == 1 and not current  # never tagged
        assert answers["1000003"] == ([], True)

        session.execute(update(Unit).where(Unit.id == units[2]).values(needs_tag=True))
        _, found = member_and_orders(session, "0" * 64, names={first.store_key: [first.name]})
        assert [o.answers for o in found] == [order_unit_answers(session, first.id)]
        assert found[0].answers is not None and found[0].answers[1] is False
