"""MRR Ledger domain: money, Stripe payload reading, MRR rules, ledger store, projector, queries."""
