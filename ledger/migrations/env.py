"""Alembic environment: the URL comes from the caller (ledger.migrate), never from a file."""

from __future__ import annotations

from alembic import context

from ledger.db import make_engine
from ledger.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("ledger.migrate sets sqlalchemy.url; run `mrr db upgrade`")

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
