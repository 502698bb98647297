"""The database: engine (`db`), tables (`schema`), migrations (`migrate`), the inbox of stored
Stripe events (`inbox`), the append-only ledger (`store`), its hash chain (`chain`) and the
restricted application role (`app_role`). Imports the rules, never reporting or processing.
"""

__all__ = ["app_role", "chain", "db", "inbox", "migrate", "schema", "store"]
