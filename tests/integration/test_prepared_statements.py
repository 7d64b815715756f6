"""Server-side prepared statements on PostgreSQL: only the statements that ask for them
(the small lookups of a proof of purchase), never the batch statements of an import, and
still right after a rollback has dropped them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from vipsync.devtools.factories import order_record
from vipsync.store.customers import member_and_orders, order_unit_answers, record_decision
from vipsync.store.db import PREPARED, make_engine, make_session_factory
from vipsync.store.models import Order, Unit
from vipsync.store.repository import Repository
from vipsync.store.sql import in_values


def _prepared(session) -> list[str]:
    """The statements prepared on the session's connection, as PostgreSQL lists them."""
    rows = session.execute(text("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql"))
    return [" ".join(r[0].split()) for r in rows]


def _proof_reads(session, order: Order) -> None:
    member, orders = member_and_orders(session, "0" * 64, names={order.store_key: [order.name]})
    assert member is None and [o.id for o in orders] == [order.id]
    record_decision(
        session, client="test", method="postal_code", outcome="refused", reason="test", now=datetime.now(UTC)
    )
    units, _ = order_unit_answers(session, order.id)
    assert len(units) == 1


def test_only_statements_that_ask_are_prepared_and_a_rollback_does_not_break_them(pg_url, digester):
    engine = make_engine(pg_url)
    factory = make_session_factory(engine, digester=digester)
    try:
        with factory() as session:
            Repository(session).upsert_orders([order_record(n) for n in range(1, 4)])
            session.commit()
        with factory() as session:
            order = session.execute(select(Order).order_by(Order.id)).scalars().first()
            assert order is not None
            # A batch statement run more often than psycopg's own threshold (five).
            ids = [u for (u,) in session.execute(select(Unit.id))]
            for _ in range(8):
                session.execute(select(Unit.id).where(in_values(Unit.id, ids, pg=True))).all()
            _proof_reads(session, order)
            prepared = _prepared(session)
            assert len(prepared) == 3, prepared
            assert prepared[0].startswith("SELECT members.id")
            assert prepared[1].startswith("INSERT INTO proof_decisions")
            assert prepared[2].startswith("SELECT units.id")

            # A rollback makes psycopg drop what it prepared; the next runs prepare again.
            session.rollback()
            _proof_reads(session, order)
            _proof_reads(session, order)
            assert len(_prepared(session)) == 3
            session.commit()
    finally:
        engine.dispose()


def test_the_option_runs_the_statement_the_usual_way_on_sqlite(sqlite_url, digester):
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine, digester=digester)
    try:
        with factory() as session:
            Repository(session).upsert_orders([order_record(1)])
            session.commit()
            order = session.execute(select(Order)).scalar_one()
            found = session.execute(select(Order.id).execution_options(**PREPARED)).scalars().all()
            assert found == [order.id]
            _proof_reads(session, order)
    finally:
        engine.dispose()
