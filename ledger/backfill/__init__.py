"""The backfill's domain: history rebuilt from Stripe objects as events (`history`, pure) and
its storage side (`store`: stored events per customer, batched processing, checkpoints).
The script that talks to Stripe is `scripts/backfill.py`.
"""

__all__ = ["history", "store"]
