"""Ops tools: the `mrr` command line, the local runner, demo data and the backfill."""
