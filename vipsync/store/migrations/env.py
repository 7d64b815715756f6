"""Alembic environment: the engine comes from vipsync.store.db.alembic_config."""

from alembic import context

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
        context.run_migrations()


run_migrations_online()
