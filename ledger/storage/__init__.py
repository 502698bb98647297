"""The database: engine (`db`), tables (`schema`), migrations (`migrate`), the inbox of stored
Stripe events (`inbox`; its PostgreSQL-only webhook insert in `pg_prepared`; operators' figures
in `inbox_stats`), the append-only ledger (`store`), its hash chain (`chain`), the workspace's
users (`users`) and the restricted application role (`app_role`). Imports the rules, never
reporting or processing.
"""

__all__ = [
    "app_role",
    "chain",
    "db",
    "inbox",
    "inbox_stats",
    "migrate",
    "pg_prepared",
    "schema",
    "store",
    "users",
]
