"""Alembic environment: the engine comes from vipsync.store.db.alembic_config.

The ops views (``vipsync.store.views``) are dropped before the migrations run and created
again from the current code after, once the schema is at head: SQLite cannot batch-alter a
table a view reads, and a view always matches the code that reads it. The roles granted
SELECT on the views (``vipsync db grant-readonly``) keep their grant.
"""

from alembic import context

from vipsync.store import views
from vipsync.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: fall back to the settings
        from vipsync.config.settings import get_settings
        from vipsync.store.db import make_engine

        engine = make_engine(get_settings().effective_database_url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        grantees = views.readonly_grantees(connection)
        views.drop_views(connection)
        context.run_migrations()
        heads = set(context.get_context().get_current_heads())
        if heads and heads == set(context.script.get_heads()):
            views.create_views(connection, grant_to=grantees)


run_migrations_online()
