"""Alembic environment: the URL comes from the caller (ledger.storage.migrate), not a file."""

from __future__ import annotations

from alembic import context

from ledger.storage.db import make_engine
from ledger.storage.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("ledger.storage.migrate sets sqlalchemy.url; run `mrr db upgrade`")

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
