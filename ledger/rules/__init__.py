"""The MRR rules: pure functions over plain data. No database, network, Flask, RQ or Redis.

Stripe payloads are read (`payloads`, `events`), priced (`pricing`), replayed per customer
(`timeline`) and classified into movements (`movements`) that become wanted entries (`entries`).
Money (`money`) and months (`months`) are the units everything else counts in.
"""

__all__ = ["entries", "events", "money", "months", "movements", "payloads", "pricing", "timeline"]
