"""The backfill's domain: history rebuilt from Stripe objects as events (`history`, pure) and
its storage side (`store`: stored events per customer, batched processing, checkpoints); the
reconcile of the ledger against Stripe's live subscriptions (`reconcile`, pure, and
`reconcile_store`). The scripts that talk to Stripe are `scripts/backfill.py` and
`workers/reconcile.py`.
"""

__all__ = ["history", "reconcile", "reconcile_store", "store"]
