"""Alembic environment: run with the connection handed over by ledger.store.migrate."""
from alembic import context

from ledger.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # plain `alembic` CLI use: build an engine from the URL option
    from ledger.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
