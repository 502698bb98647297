"""MRR Ledger's domain, in layers; each imports only from the layers below it.

- `ledger.rules`: the MRR rules as pure functions over plain data (no I/O).
- `ledger.storage`: the database: tables, migrations, the inbox, the append-only ledger.
- `ledger.processing`: a stored event -> the rules -> ledger entries.
- `ledger.reporting`: monthly balances, metrics, reports, exports, explanations.
- `ledger.backfill`: history rebuilt from Stripe objects, and its storage side.

`ledger.settings` is configuration, read at the edges (web, workers, CLI) and passed down.
The layering is a contract checked by import-linter (`[tool.importlinter]` in pyproject.toml).
"""
