"""The database tables. Migrations in ledger/storage/migrations create them; code reads these."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

from ledger.storage.db import UTCDateTime

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class InboxStatus(enum.StrEnum):
    """Where a stored event is in its processing: the values of the inbox's `status` column."""

    PENDING = "pending"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


# Stored as the values' text in a VARCHAR(16) (migration 0001), read back as InboxStatus.
_INBOX_STATUS = Enum(
    InboxStatus,
    native_enum=False,
    create_constraint=False,
    length=16,
    values_callable=lambda statuses: [s.value for s in statuses],
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False, unique=True),
    Column("event_type", String(255), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("api_version", String(64)),
    Column("livemode", Boolean, nullable=False, default=False),
    # With livemode, the event's source (migration 0015; ledger/rules/sources.py): the Connect
    # account it names, the account its webhook secret is bound to, or the backfill key's;
    # "" for the endpoint's own account when no id is known.
    Column("account", String(255), nullable=False, default=""),
    Column("customer_id", String(255)),
    Column("source", String(16), nullable=False, default="webhook"),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("status", _INBOX_STATUS, nullable=False, default=InboxStatus.PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("processed_at", UTCDateTime()),
    Column("payload", Text, nullable=False),
    Index("ix_inbox_status", "status", "id"),
    Index("ix_inbox_customer", "customer_id", "created"),
    # A customer's events not processed yet (migration 0007): a replay never starts from a
    # checkpoint after one of them. Queries must say status = 'pending' literally to use it.
    Index(
        "ix_inbox_customer_pending",
        "customer_id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(255), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    Column("category", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("effective_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("source_event_id", String(255), nullable=False),
    Column("cause_event_id", String(255), nullable=False),
    Column("reversal_of", Id, ForeignKey("ledger_entries.id"), unique=True),
    Column("explanation", Text, nullable=False, default="{}"),
    Index("ix_ledger_customer", "customer_id", "id"),
    Index("ix_ledger_effective", "effective_at"),
    Index("ix_ledger_source", "source_event_id"),
    Index("ix_ledger_cell", "category", "currency", "effective_at", "amount"),
    Index("ix_ledger_subscription", "subscription_id", "id"),
    Index(
        "ix_ledger_first_paid",
        "customer_id",
        "currency",
        "effective_at",
        "id",
        postgresql_where=text("category = 'new' AND reversal_of IS NULL"),
        sqlite_where=text("category = 'new' AND reversal_of IS NULL"),
    ),
)

# The tamper-evidence hash chain over ledger_entries, written only by a database trigger
# (migration 0003; the hashed content is defined in ledger/storage/chain.py). `seq` is the
# position in the chain; unique `prev_hash` means the chain cannot fork. No foreign key to
# ledger_entries: it would refuse TRUNCATE before the append-only trigger could say why.
ledger_chain = Table(
    "ledger_chain",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("entry_id", Id, nullable=False, unique=True),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("row_hash", String(64), nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("first_seen_at", UTCDateTime(), nullable=False),
)

reference_objects = Table(
    "reference_objects",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("object_id", String(255), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("source", String(255), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

customer_references = Table(
    "customer_references",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("object_id", String(255), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
)


def text_limit(column: Column[Any]) -> int:
    """The most characters a string column holds: what a value must fit before it is written."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no length")
    return length


# --- projections (migration 0002) ------------------------------------------------------------

# Movement sums and month-end customer count changes per currency and month ("YYYY-MM"), kept by
# ledger.reporting.projector; a report is a running sum over these rows. The entry counts of
# each movement (migration 0010) give the Entries page the count of a month, category and
# currency without reading the ledger.
MOVEMENT_COLUMNS = (
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
    "delinquent",
    "recovered",
    "delinquent_churn",
    "delinquent_change",
)
ENTRY_COUNT_COLUMNS = tuple(f"{name}_entries" for name in MOVEMENT_COLUMNS)
# What a month's figures are made of; the segments (migration 0011) keep these, not the counts.
BALANCE_COLUMNS = (*MOVEMENT_COLUMNS, "customers_change", "customers_lost")
MONTH_TOTAL_COLUMNS = (*BALANCE_COLUMNS, *ENTRY_COUNT_COLUMNS)

# Keyed by mode (migration 0015): live and test figures are never summed together.
mrr_month_totals = Table(
    "mrr_month_totals",
    metadata,
    Column("livemode", Boolean, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("month", String(7), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in MONTH_TOTAL_COLUMNS),
)

# How far into the ledger (by id) each projection has read; written in the same transaction
# as the rows it updates.
projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_entry_id", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Ops-supplied exchange rates: one unit of `currency` in the base currency on `rate_date`.
# The rate is a decimal string (exact on SQLite too, where NUMERIC would round through float).
fx_rates = Table(
    "fx_rates",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("rate_date", Date, primary_key=True),
    Column("rate", String(64), nullable=False),
    Column("loaded_at", UTCDateTime(), nullable=False),
)

# One row per backfill scope (all customers, or one): the last customer, in Stripe's listing
# order, up to which every customer's history is stored and processed. Advanced only after
# that work is committed, so `--resume` never skips a customer.
backfill_checkpoints = Table(
    "backfill_checkpoints",
    metadata,
    Column("scope", String(255), primary_key=True),
    Column("cursor", String(255)),
    Column("customers_done", BigInteger, nullable=False, default=0),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime()),
)

# One row per reconcile (migration 0013): `mrr reconcile` or the worker's schedule comparing
# each subscription's MRR in the ledger with what the rules give for Stripe's live object.
# `finished_at` is null while it runs (or if it died); `error` says why it did not finish;
# `details` is the JSON list of differences.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("trigger", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("subscriptions", Integer),
    Column("differences", Integer),
    Column("fixed", Integer),
    Column("error", Text),
    Column("details", Text),
    # The source compared (migration 0015): the API key's account ("" unknown) and mode.
    Column("account", String(255)),
    Column("livemode", Boolean),
    Index("ix_reconcile_runs_started_at", "started_at"),
)

# --- the workspace (migration 0006) ---------------------------------------------------------

USER_ROLES = ("viewer", "admin")

# People who sign in to the web pages. Emails are stored lowercase; the password only as a
# salted scrypt hash (ingest/passwords.py). A disabled user keeps its row (who did what).
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime()),
    Column("last_sign_in_at", UTCDateTime()),
)

# Failed sign-ins, counted per account and per client address to throttle guessing.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_sign_in_failures_email", "email", "at"),
    Index("ix_sign_in_failures_ip", "ip", "at"),
)

# Customer names and emails for display, from the newest stored `customer.*` event of each
# customer (or the backfill's customer list; ledger/storage/profiles.py writes it). Never logged.
customer_profiles = Table(
    "customer_profiles",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("name", Text),
    Column("email", Text),
    Column("version", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    # Segment attributes (migration 0011): the address's country, metadata as JSON, created.
    Column("country", String(64)),
    Column("metadata", Text),
    Column("created", BigInteger),
)

# Total customer rows come from the ledger (the projector); segment rows from the replay.
ALL = "all"

# MRR per customer per month (migration 0011), for the whole customer and per segment: the
# months its figures moved, each with the month-end balances and `next_month` (see 0011).
customer_months = Table(
    "customer_months",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    # The customer's source (migration 0018): a customer id means something only in one, and
    # live and test rows are never read together.
    Column("account", String(255), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("dimension", String(16), primary_key=True),
    Column("segment", String(255), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("next_month", String(7)),
    *(Column(name, BigInteger, nullable=False) for name in MOVEMENT_COLUMNS),
    Column("active_mrr", BigInteger, nullable=False),
    Column("delinquent_mrr", BigInteger, nullable=False),
    Column("customers_change", SmallInteger, nullable=False),
    Column("customers_lost", SmallInteger, nullable=False),
    Column("first_paid", String(7)),
    Index(
        "ix_customer_months_in_force",
        "livemode",
        "dimension",
        "segment",
        "next_month",
        "month",
        "currency",
    ),
)

# Cohorts (migration 0011): how each cohort's retained and delinquent customers and active MRR
# change at a month end, and who joined it; their running sums are the cohort table.
COHORT_COLUMNS = ("joined", "retained", "delinquent", "mrr")
cohort_month_changes = Table(
    "cohort_month_changes",
    metadata,
    # The source (migration 0018): read one mode at a time, every account or one.
    Column("livemode", Boolean, primary_key=True),
    Column("account", String(255), primary_key=True),
    Column("dimension", String(16), primary_key=True),
    Column("segment", String(255), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("cohort", String(7), primary_key=True),
    Column("month", String(7), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in COHORT_COLUMNS),
)

# Per segment, the sums `mrr_month_totals` keeps per currency (migration 0011).
segment_month_totals = Table(
    "segment_month_totals",
    metadata,
    # The source (migration 0018): read one mode at a time, every account or one.
    Column("livemode", Boolean, primary_key=True),
    Column("account", String(255), primary_key=True),
    Column("dimension", String(16), primary_key=True),
    Column("segment", String(255), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("month", String(7), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in BALANCE_COLUMNS),
)

# Replay checkpoints (migration 0007): a customer's replay state after its first `events`
# relevant events, the last at (created, event_id), sealed by ledger.rules.state_codec. A cache:
# emptying it changes no number, the next event of each customer replays from its start.
replay_checkpoints = Table(
    "replay_checkpoints",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    # The replay unit's source (migration 0015): a customer id means something only in one.
    Column("account", String(255), primary_key=True),
    Column("livemode", Boolean, primary_key=True),
    Column("events", BigInteger, primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("state", Text, nullable=False),
    Column("saved_at", UTCDateTime(), nullable=False),
)

# Forecasts kept as made at the start of each month (migration 0014), so a closed month shows
# its forecast against what happened. Written once per currency and month by the first
# forecast asked for in that month (ledger/reporting/forecast.py); never updated.
mrr_forecasts = Table(
    "mrr_forecasts",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("made_month", String(7), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("model", String(16), nullable=False),
    Column("closing_mrr", BigInteger, nullable=False),
    Column("low_mrr", BigInteger),
    Column("high_mrr", BigInteger),
    Column("detail", Text, nullable=False, default="{}"),
    Column("made_at", UTCDateTime(), nullable=False),
)

# The ledger summed by (currency, effective month, recorded month, category), kept from the
# hash chain (migration 0016) for the forecast's backtest (ledger/reporting/forecast_cells.py):
# a few hundred rows, whatever the size of the ledger.
forecast_cells = Table(
    "forecast_cells",
    metadata,
    # Keyed by mode (migration 0015), as mrr_month_totals.
    Column("livemode", Boolean, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("effective_month", String(7), primary_key=True),
    Column("recorded_month", String(7), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("amount", BigInteger, nullable=False),
)

# Each model's forecast from each closed backtest cut-off (migration 0016): made from the
# entries recorded by the cut-off's end only, so it never changes once the month has closed
# (ledger/reporting/backtest_store.py). `since` is the history's first month and `version` the
# models' version: either changing makes other rows, never rewrites these.
forecast_backtests = Table(
    "forecast_backtests",
    metadata,
    Column("currency", String(3), primary_key=True),
    Column("version", String(16), primary_key=True),
    Column("since", String(7), primary_key=True),
    Column("cutoff", String(7), primary_key=True),
    Column("model", String(16), primary_key=True),
    Column("forecast", Text),  # closing MRR of the months after the cut-off, JSON; null: none
    Column("made_at", UTCDateTime(), nullable=False),
)

# Committed MRR kept per customer (migration 0017, ledger/storage/commitments.py): each
# customer's stored subscription and schedule objects folded (`body`: its subscriptions'
# latest figures, steps and announcers, and the fold's notes, JSON), and the fold's state to
# continue from, after `folded_count` events up to (`folded_created`, `folded_event`). Kept by
# the worker in the transaction that processes one of them. "": objects without a customer.
committed_customers = Table(
    "committed_customers",
    metadata,
    Column("customer_id", String(255), primary_key=True),
    Column("scheduled", Boolean, nullable=False),  # a step, a trial or a note: always read
    Column("body", Text, nullable=False),
    Column("folded_created", BigInteger, nullable=False),
    Column("folded_event", String(255), nullable=False),
    Column("folded_count", Integer, nullable=False),
    Column("state", Text),
    Index("ix_committed_customers_scheduled", "scheduled", "customer_id"),
)

# Each price seen on a stored snapshot, where in the order of §5.3 it was seen: a fold of one
# customer resolves another customer's price ids as the fold of every object would there.
committed_prices = Table(
    "committed_prices",
    metadata,
    Column("price_id", String(255), primary_key=True),
    Column("created", BigInteger, primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("customer_id", String(255), nullable=False),
    Column("price", Text, nullable=False),
    Index("ix_committed_prices_customer", "customer_id", "created", "event_id"),
)

# The price ids a customer's fold resolved by id: its fold is redone when what is known of
# one of them changes.
committed_price_uses = Table(
    "committed_price_uses",
    metadata,
    Column("price_id", String(255), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
    Index("ix_committed_price_uses_customer", "customer_id"),
)
