"""The docs cannot drift from the code.

The worked examples of docs/mrr-rules.md are recomputed by the real rules (and the bridge also
through the webhook, the worker and `mrr report`, on both databases); every relative link in
README.md, bench/README.md and docs/*.md resolves to a file in the repository, and every anchor
to a heading of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Queue

from ingest.app import create_app
from ledger.reporting import exports
from ledger.reporting.balances import Projection, balances
from ledger.reporting.reports import CurrencyReport, Report, ReportQuery
from ledger.rules.entries import DesiredEntry
from ledger.rules.money import to_major
from ledger.rules.months import Month, month_index
from ledger.rules.timeline import replay_customer
from ledger.settings import Settings
from scripts.cli import main
from tests.conftest import WEBHOOK_SECRET
from tests.rules import builders as b
from tests.support.ledger import posting
from tests.support.pipeline import drain
from tests.support.stripe_sign import signed

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs" / "mrr-rules.md"
NO_ENTRY = "\N{EN DASH}"  # what the tables show for an event that appends nothing

Events = list[dict[str, Any]]


def at(month: int, day: int, hour: int = 0, second: int = 0) -> int:
    return int(datetime(2026, month, day, hour, 0, second, tzinfo=UTC).timestamp())


# --- reading the examples out of docs/mrr-rules.md ---------------------------------------------


def example_lines(name: str) -> list[str]:
    """The lines after `<!-- example: NAME -->` up to the first blank line (or closing fence)."""
    lines = RULES.read_text(encoding="utf-8").splitlines()
    marker = f"<!-- example: {name} -->"
    starts = [n for n, line in enumerate(lines) if line.strip() == marker]
    assert len(starts) == 1, f"docs/mrr-rules.md has {len(starts)} markers {marker!r}"
    found: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if not line.strip() or (found and found[0].strip().startswith("```") and line == "```"):
            break
        found.append(line)
    return found


def example_table(name: str) -> list[list[str]]:
    """The table's body rows, cells stripped of spaces and backticks."""
    rows = [line.strip().strip("|").split("|") for line in example_lines(name)]
    cells = [[cell.strip().strip("`") for cell in row] for row in rows]
    return cells[2:]  # header and separator


def example_block(name: str) -> str:
    lines = example_lines(name)
    assert lines[0].strip().startswith("```"), f"example {name} is not a code block"
    return "\n".join(lines[1:]) + "\n"


# --- running the rules on an example ---------------------------------------------------------


def replay(customer: str, events: Sequence[Mapping[str, Any]]) -> list[DesiredEntry]:
    return replay_customer(customer, [b.record(e) for e in events], b.Refs()).entries


def entry_text(entry: DesiredEntry) -> str:
    return f"{entry.category.value} {to_major(entry.amount, entry.currency)}"


def event_rows(customer: str, events: Events) -> list[list[str]]:
    """Per event, in order: the entries it produced, or one row saying it produced none."""
    entries = replay(customer, events)
    rows: list[list[str]] = []
    for event in events:
        own = [e for e in entries if e.source_event_id == event["id"]]
        day = datetime.fromtimestamp(event["created"], UTC).date().isoformat()
        if not own:
            rows.append([day, event["type"], NO_ENTRY, NO_ENTRY])
        for entry in own:
            rows.append(
                [
                    entry.effective_at.date().isoformat(),
                    event["type"],
                    entry.category.value,
                    str(to_major(entry.amount, entry.currency)),
                ]
            )
    assert len(entries) == sum(1 for row in rows if row[2] != NO_ENTRY)
    return rows


def priced(customer: str, created: dict[str, Any]) -> list[str]:
    """exact monthly amount, MRR, ledger entry: a subscription's one `new` entry."""
    (entry,) = replay(customer, [created])
    arithmetic = entry.explanation["mrr"]
    return [arithmetic["exact"], str(arithmetic["mrr"]), entry_text(entry)]


# --- §3: pricing ---------------------------------------------------------------------------------

TIERS: list[dict[str, Any]] = [
    {"up_to": 10, "unit_amount": 1000, "flat_amount": 2000},
    {"up_to": 50, "unit_amount": 800},
    {"up_to": None, "unit_amount": 500},
]


def test_tiers_example() -> None:
    rows = []
    for mode in ("graduated", "volume"):
        seats = b.price(None, tiers=TIERS, tiers_mode=mode, price_id=f"price_{mode}")
        created = b.subscription_event(
            "created", "sub_t", "cus_t", at(1, 5), items=[{"price": seats, "quantity": 60}]
        )
        rows.append([mode, *priced("cus_t", created)])
    assert example_table("tiers") == rows


def test_yearly_price_example() -> None:
    created = b.subscription_event(
        "created", "sub_y", "cus_y", at(1, 5), items=[(100014, "year", 1, 1)]
    )
    assert example_table("yearly") == [priced("cus_y", created)]


def test_discounts_example() -> None:
    ten = b.coupon_object("TEN", percent_off=10)
    fifty = b.coupon_object("FIFTY", amount_off=5000, currency="usd")
    on_item = b.discount_object(
        "di_item", "cus_d", ten, subscription="sub_d", subscription_item="si_sub_d_0", shape="old"
    )
    on_subscription = b.discount_object("di_sub", "cus_d", fifty, subscription="sub_d", shape="old")
    created = b.subscription_event(
        "created", "sub_d", "cus_d", at(1, 5), shape="old",
        items=[(29900, "month", 3, 2)], discount=on_subscription, item_discounts={0: [on_item]},
    )  # fmt: skip
    assert example_table("discounts") == [priced("cus_d", created)]


# --- §4, §5, §9: movements -----------------------------------------------------------------------


def test_failure_then_recovery_example() -> None:
    events = [
        b.subscription_event("created", "sub_l", "cus_l", at(1, 5)),
        b.invoice_event("payment_failed", "in_feb", "cus_l", "sub_l", at(2, 5, 10)),
        b.subscription_event(
            "updated", "sub_l", "cus_l", at(2, 5, 10, 5), "past_due", latest_invoice="in_feb"
        ),
        b.invoice_event("paid", "in_feb", "cus_l", "sub_l", at(2, 9, 15)),
        b.subscription_event("updated", "sub_l", "cus_l", at(2, 9, 15, 5), latest_invoice="in_feb"),
    ]
    assert example_table("failure-then-recovery") == event_rows("cus_l", events)


def test_pause_example() -> None:
    fifty = [(5000, "month", 1, 1)]
    events = [
        b.subscription_event("created", "sub_p", "cus_p", at(1, 10), items=fifty),
        b.subscription_event(
            "updated", "sub_p", "cus_p", at(3, 10), items=fifty, pause_collection=True
        ),
        b.subscription_event("updated", "sub_p", "cus_p", at(4, 10), items=fifty),
    ]
    assert example_table("pause") == event_rows("cus_p", events)


def test_reactivation_example() -> None:
    thirty, forty = [(3000, "month", 1, 1)], [(4000, "month", 1, 1)]
    events = [
        b.subscription_event("created", "sub_r1", "cus_r", at(1, 15), items=thirty),
        b.subscription_event("deleted", "sub_r1", "cus_r", at(2, 20), "canceled", items=thirty),
        b.subscription_event("created", "sub_r2", "cus_r", at(4, 2), items=forty),
    ]
    assert example_table("reactivation") == event_rows("cus_r", events)


def test_renewal_at_another_price_example() -> None:
    higher = [(12000, "month", 1, 1)]
    events = [
        b.subscription_event("created", "sub_x", "cus_x", at(1, 5)),
        b.subscription_event(
            "updated", "sub_x", "cus_x", at(2, 5), "past_due", items=higher, latest_invoice="in_x"
        ),
        b.invoice_event("paid", "in_x", "cus_x", "sub_x", at(2, 7), amount=12000),
        b.subscription_event(
            "updated", "sub_x", "cus_x", at(2, 7, 0, 5), items=higher, latest_invoice="in_x"
        ),
    ]
    assert example_table("renewal-at-another-price") == event_rows("cus_x", events)


# --- §7.2: the bridge ----------------------------------------------------------------------------


def bridge_cast() -> dict[str, Events]:
    def monthly(amount: int, seats: int = 1) -> list[tuple[int, str, int, int]]:
        return [(amount, "month", 1, seats)]

    sub = b.subscription_event
    return {
        "cus_a": [
            sub("created", "sub_a", "cus_a", at(1, 3), items=monthly(5000, 2)),
            sub("updated", "sub_a", "cus_a", at(2, 10), items=monthly(5000, 3)),
        ],
        "cus_b": [
            sub("created", "sub_b", "cus_b", at(1, 8), items=monthly(8000)),
            b.invoice_event("payment_failed", "in_b", "cus_b", "sub_b", at(2, 8), amount=8000),
        ],
        "cus_c": [
            sub("created", "sub_c", "cus_c", at(1, 12), items=monthly(5000)),
            sub("deleted", "sub_c", "cus_c", at(2, 15), "canceled", items=monthly(5000)),
        ],
        "cus_d": [sub("created", "sub_d", "cus_d", at(2, 20), items=monthly(6000))],
        "cus_e": [
            sub("created", "sub_e", "cus_e", at(1, 20), items=monthly(3000, 2)),
            sub("updated", "sub_e", "cus_e", at(2, 25), items=monthly(3000, 1)),
        ],
    }


def test_bridge_example_from_the_rules_and_balances() -> None:
    entries = [e for c, events in bridge_cast().items() for e in replay(c, events)]
    entries.sort(key=lambda e: e.effective_at)
    rows = [
        posting(e.customer_id, e.currency, e.category.value, e.amount, month_index(e.effective_at))
        for e in entries
    ]
    first, last = Month.parse("2026-01"), Month.parse("2026-02")
    months = balances(Projection().add_all(rows).totals(), "usd", first, last)
    report = Report(ReportQuery(first, last), CurrencyReport("usd", months))
    assert exports.report_table(report) == example_block("bridge")


def test_bridge_example_through_the_webhook_the_worker_and_mrr_report(
    settings: Settings, queue: Queue
) -> None:
    client = create_app(settings).test_client()
    for events in bridge_cast().values():
        for body in events:
            payload, headers = signed(body, WEBHOOK_SECRET)
            assert client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200
    drain(queue, client)
    printed = CliRunner().invoke(
        main,
        ["report", "--from", "2026-01", "--to", "2026-02", "--currency", "usd"],
        env={"DATABASE_URL": settings.database_url},
    )
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == example_block("bridge")


# --- links -------------------------------------------------------------------------------------

LINKED = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens; a repeated
    heading gets -1, -2, ..."""
    found: set[str] = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def relative_links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not SCHEME.match(t)]


def broken(path: Path, target: str) -> str | None:
    file_part, _, anchor = target.partition("#")
    linked = path if not file_part else (path.parent / file_part).resolve()
    if not linked.is_relative_to(ROOT):
        return "points outside the repository"
    if not linked.exists():
        return "no such file"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"no heading #{anchor} in {linked.relative_to(ROOT)}"
    return None


def test_the_documents_exist_and_link_to_each_other() -> None:
    readme_links = relative_links(ROOT / "README.md")
    for doc in ("docs/mrr-rules.md", "docs/architecture.md", "bench/README.md"):
        assert (ROOT / doc).is_file(), doc
        assert any(link.partition("#")[0] == doc for link in readme_links), doc


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    problems = [
        f"{target}: {problem}"
        for target in relative_links(path)
        if (problem := broken(path, target)) is not None
    ]
    assert problems == [], f"{path.relative_to(ROOT)}: broken links {problems}"
