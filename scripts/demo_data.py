"""The demo's Stripe account: 24 months of a small SaaS business, as the events Stripe sends.

`demo_events(final, seed)` is pure: the same final month and seed give the same events, byte for
byte. The business starts selling in the first of the 24 months and its story ends with
`final`; nothing happens after it.

The cast is a fixed list of roles (`USD_ROLES`, `EUR_ROLES`), so every movement the rules know
appears whatever the seed; the seed only decides who plays which role, and when.
- USD ends as the worked example of the MRR article our rules start from: at the end of the
  final month 150 customers pay 50.00 a month (Basic), 100 pay 100.00 (Pro) and 50 pay 200.00
  (Enterprise): MRR 27,500.00 from 300 customers, ARPU 91.67. On the way some of them upgraded
  or downgraded (a few while a payment was failing), had a renewal fail and paid it days later,
  had a 25% retention discount for three months, or cancelled and came back. Beside them are
  customers who cancelled, whose card kept failing until Stripe cancelled the subscription,
  whose trial ran out, and two whose renewal in the final month is still unpaid.
- EUR is a smaller price list with a yearly Pro plan: its own MRR, never added to USD's.

Every customer is one subscription at a time, on one plan, billed on its sign-up day of the
month. Each renewal is an `invoice.paid` an hour after the period starts; a failed renewal is
an `invoice.payment_failed` and the subscription going `past_due`.
"""

from __future__ import annotations

import calendar
import random
import string
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ledger.rules.months import Month
from scripts import stripe_objects as so

__all__ = [
    "BASIC",
    "CURRENCIES",
    "DEFAULT_SEED",
    "ENTERPRISE",
    "EUR_ROLES",
    "MONTHS",
    "PRO",
    "USD_ROLES",
    "Plan",
    "Role",
    "add_months",
    "demo_events",
    "first_month",
]

DEFAULT_SEED = 2024
MONTHS = 24
DAY = 86_400
HOUR = 3_600
TRIAL_DAYS = 14
# Episodes happen within this many days of a renewal, so one that starts at a renewal this far
# before the end of the story also ends within it.
EPISODE_DAYS = 20
ID_CHARACTERS = string.ascii_letters + string.digits

Event = dict[str, Any]
Arc = Literal[
    "stayed", "changed", "changed_while_unpaid", "paid_late", "discounted", "came_back",
    "cancelled", "changed_then_cancelled", "card_kept_failing", "trial_lapsed", "still_unpaid",
]  # fmt: skip
EpisodeKind = Literal[
    "change", "paid_late", "changed_while_unpaid", "discount", "cancel", "unpaid_cancel",
    "still_unpaid",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    currency: str
    amount: int  # per interval, in minor units
    interval: str  # "month" or "year"

    @property
    def price_id(self) -> str:
        return f"price_{self.name.lower()}_{self.currency}_{self.interval}ly"

    @property
    def months(self) -> int:
        return 12 if self.interval == "year" else 1

    def price(self) -> Event:
        product = f"prod_{self.name.lower()}"
        return so.price(
            self.price_id, self.amount, self.currency, self.interval,
            product=product, nickname=f"{self.name} ({self.interval}ly)",
        )  # fmt: skip


BASIC = Plan("Basic", "usd", 5_000, "month")
PRO = Plan("Pro", "usd", 10_000, "month")
ENTERPRISE = Plan("Enterprise", "usd", 20_000, "month")
EUR_BASIC = Plan("Basic", "eur", 4_500, "month")
EUR_PRO = Plan("Pro", "eur", 9_000, "month")
EUR_PRO_YEARLY = Plan("Pro", "eur", 90_000, "year")
EUR_ENTERPRISE = Plan("Enterprise", "eur", 18_000, "month")

RETENTION = so.coupon("RETAIN25", "Retention offer: 25% off for 3 months", 25, 3, 1_704_067_200)


@dataclass(frozen=True, slots=True)
class Role:
    """`count` customers who follow `arc` (see `_stints`), ending on (or leaving) `plan`;
    `earlier` is the plan they had before changing."""

    count: int
    arc: Arc
    plan: Plan
    earlier: Plan | None = None


USD_ROLES: tuple[Role, ...] = (
    # The 300 still paying at the end: 150 Basic, 100 Pro, 50 Enterprise.
    Role(111, "stayed", BASIC),
    Role(7, "changed", BASIC, PRO),
    Role(3, "changed_while_unpaid", BASIC, PRO),
    Role(15, "paid_late", BASIC),
    Role(8, "discounted", BASIC),
    Role(6, "came_back", BASIC, BASIC),
    Role(42, "stayed", PRO),
    Role(35, "changed", PRO, BASIC),
    Role(3, "changed", PRO, ENTERPRISE),
    Role(1, "changed_while_unpaid", PRO, ENTERPRISE),
    Role(10, "paid_late", PRO),
    Role(5, "discounted", PRO),
    Role(4, "came_back", PRO, BASIC),
    Role(20, "stayed", ENTERPRISE),
    Role(16, "changed", ENTERPRISE, PRO),
    Role(3, "changed", ENTERPRISE, BASIC),
    Role(5, "paid_late", ENTERPRISE),
    Role(4, "discounted", ENTERPRISE),
    Role(2, "came_back", ENTERPRISE, PRO),
    # Gone (or not paying) by the end.
    Role(26, "cancelled", BASIC),
    Role(9, "cancelled", PRO),
    Role(2, "cancelled", ENTERPRISE),
    Role(5, "changed_then_cancelled", BASIC, PRO),
    Role(8, "card_kept_failing", BASIC),
    Role(4, "card_kept_failing", PRO),
    Role(10, "trial_lapsed", BASIC),
    Role(2, "still_unpaid", PRO),
)

EUR_ROLES: tuple[Role, ...] = (
    Role(9, "stayed", EUR_BASIC),
    Role(2, "discounted", EUR_BASIC),
    Role(4, "stayed", EUR_PRO),
    Role(4, "changed", EUR_PRO, EUR_BASIC),
    Role(2, "paid_late", EUR_PRO),
    Role(2, "stayed", EUR_PRO_YEARLY),
    Role(3, "changed", EUR_PRO_YEARLY, EUR_PRO),
    Role(3, "stayed", EUR_ENTERPRISE),
    Role(1, "changed", EUR_ENTERPRISE, EUR_PRO),
    Role(1, "came_back", EUR_PRO, EUR_BASIC),
    Role(5, "cancelled", EUR_BASIC),
    Role(1, "cancelled", EUR_PRO),
    Role(2, "card_kept_failing", EUR_BASIC),
    Role(1, "trial_lapsed", EUR_PRO),
)

CURRENCIES = ("usd", "eur")


# --- time ------------------------------------------------------------------------------------


def first_month(final: Month) -> Month:
    return Month(final.index - MONTHS + 1)


def add_months(moment: int, months: int) -> int:
    """The same day of the month and time, `months` later (the month's last day if shorter)."""
    at = datetime.fromtimestamp(moment, UTC)
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return int(at.replace(year=year, month=month + 1, day=day).timestamp())


@dataclass(frozen=True, slots=True)
class Window:
    first: Month
    start: int
    end: int  # the end of the final month: nothing happens from here on

    @classmethod
    def ending(cls, final: Month) -> Window:
        first = first_month(final)
        return cls(first, int(first.start().timestamp()), int(final.next().start().timestamp()))

    def month_start(self, offset: int) -> int:
        return int(Month(self.first.index + offset).start().timestamp())


# --- the story of each customer --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Episode:
    """Something that happens in billing period `period` of a subscription (0 is the first).

    change: a plan change mid-period. paid_late: the renewal fails, paid `days` later.
    changed_while_unpaid: the renewal fails, the plan changes, then the renewal is paid.
    discount: a retention discount mid-period, removed by Stripe three renewals later.
    cancel: cancelled mid-period, ending at the next renewal. unpaid_cancel: the renewal
    fails and keeps failing; Stripe cancels two weeks later. still_unpaid: the renewal fails,
    and it is still unpaid at the end of the story.
    """

    kind: EpisodeKind
    plan: Plan | None = None
    days: int = 0
    period: int = 0

    @property
    def span(self) -> int:
        """How many billing periods, from its own, the episode runs into."""
        return {"discount": 4, "cancel": 2}.get(self.kind, 1)


@dataclass(frozen=True, slots=True)
class Stint:
    """One subscription: signed up at `start` on `plan`, then its episodes, in order."""

    start: int
    plan: Plan
    trial: bool = False
    episodes: tuple[Episode, ...] = ()
    lapses: bool = False  # the trial ends without a payment, and the subscription with it

    @property
    def anchor(self) -> int:
        """The first paid period's start: sign-up, or the end of the trial."""
        return self.start + (TRIAL_DAYS * DAY if self.trial else 0)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    email: str
    stints: tuple[Stint, ...]
    new_email: tuple[int, str] | None = None  # when they changed their billing email, and to


def _usable_periods(anchor: int, end: int) -> int:
    """The last period of a monthly subscription an episode can start in and end before `end`."""
    last = 0
    while add_months(anchor, last + 1) + EPISODE_DAYS * DAY < end:
        last += 1
    return last


def _sign_up(
    rng: random.Random, window: Window, *, periods: int, trial: bool, months: range | None = None
) -> int:
    """A sign-up time in `months` of the window (later ones likelier: the business grows) that
    leaves `periods` billing periods for episodes before the end."""
    choices = list(months if months is not None else range(MONTHS))
    weights = [6 + m for m in choices]
    while True:
        month = rng.choices(choices, weights)[0]
        start = window.month_start(month) + rng.randint(0, 27) * DAY + rng.randint(7, 21) * HOUR
        start += rng.randint(0, HOUR - 1)
        anchor = start + (TRIAL_DAYS * DAY if trial else 0)
        if anchor < window.end - DAY and _usable_periods(anchor, window.end) >= periods:
            return start


def _placed(rng: random.Random, episodes: list[Episode], last: int) -> tuple[Episode, ...]:
    """The episodes in order, in periods 1..last, none overlapping another's span."""
    free = last - sum(e.span for e in episodes)
    assert free >= 0, "no room for the episodes"
    cuts = sorted(rng.randint(0, free) for _ in episodes)
    placed, used = [], 0
    for episode, cut in zip(episodes, cuts, strict=True):
        placed.append(replace(episode, period=1 + cut + used))
        used += episode.span
    return tuple(placed)


def _stint(
    rng: random.Random,
    window: Window,
    plan: Plan,
    episodes: list[Episode],
    *,
    trial_share: float = 0.2,
    months: range | None = None,
) -> Stint:
    trial = rng.random() < trial_share
    need = sum(e.span for e in episodes)
    start = _sign_up(rng, window, periods=need, trial=trial, months=months)
    stint = Stint(start, plan, trial)
    if not episodes:
        return stint
    last = _usable_periods(stint.anchor, window.end)
    return replace(stint, episodes=_placed(rng, episodes, last))


def _stints(rng: random.Random, role: Role, window: Window) -> tuple[Stint, ...]:
    earlier = role.earlier or role.plan
    match role.arc:
        case "stayed":
            return (_stint(rng, window, role.plan, []),)
        case "changed":
            return (_stint(rng, window, earlier, [Episode("change", role.plan)]),)
        case "changed_while_unpaid":
            return (_stint(rng, window, earlier, [Episode("changed_while_unpaid", role.plan)]),)
        case "paid_late":
            return (_stint(rng, window, role.plan, [Episode("paid_late", days=rng.randint(2, 9))]),)
        case "discounted":
            return (_stint(rng, window, role.plan, [Episode("discount")]),)
        case "cancelled":
            return (_stint(rng, window, role.plan, [Episode("cancel")]),)
        case "changed_then_cancelled":
            episodes = [Episode("change", role.plan), Episode("cancel")]
            return (_stint(rng, window, earlier, episodes),)
        case "card_kept_failing":
            return (_stint(rng, window, role.plan, [Episode("unpaid_cancel")]),)
        case "trial_lapsed":
            start = _sign_up(rng, window, periods=0, trial=True)
            return (Stint(start, role.plan, trial=True, lapses=True),)
        case "still_unpaid":
            return (_still_unpaid(rng, window, role.plan),)
        case "came_back":
            return _came_back(rng, window, earlier, role.plan)
    raise ValueError(f"unknown arc {role.arc!r}")


def _still_unpaid(rng: random.Random, window: Window, plan: Plan) -> Stint:
    """Signed up in the first half of a month; the renewal in the final month fails and is
    still unpaid at the end."""
    month = rng.randint(0, MONTHS - 6)
    start = window.month_start(month) + rng.randint(0, 14) * DAY + rng.randint(7, 21) * HOUR
    return Stint(start, plan, episodes=(Episode("still_unpaid", period=MONTHS - 1 - month),))


def _came_back(
    rng: random.Random, window: Window, first_plan: Plan, plan: Plan
) -> tuple[Stint, Stint]:
    """Signed up in the first ten months, cancelled within seven, back on `plan` one to four
    months after leaving."""
    start = _sign_up(rng, window, periods=0, trial=False, months=range(10))
    cancel = Episode("cancel", period=rng.randint(1, 6))
    ended = add_months(start, cancel.period + 1)
    back = ended + rng.randint(30, 120) * DAY + rng.randint(0, DAY - 1)
    assert back < window.end - DAY
    return Stint(start, first_plan, episodes=(cancel,)), Stint(back, plan)


# --- names -----------------------------------------------------------------------------------

NAME_FIRST = (
    "Acme", "Alder", "Amber", "Apex", "Arbor", "Aster", "Atlas", "Aurora", "Basalt", "Beacon",
    "Birch", "Blue", "Bright", "Cedar", "Cinder", "Cobalt", "Copper", "Coral", "Crest", "Delta",
    "Ember", "Falcon", "Fern", "Flint", "Garnet", "Granite", "Harbor", "Hazel", "Indigo",
    "Juniper", "Kestrel", "Lark", "Linden", "Lumen", "Maple", "Meadow", "Mosaic", "Nimbus",
    "North", "Oak", "Onyx", "Orbit", "Pine", "Quarry", "Raven", "River", "Sable", "Sage",
    "Slate", "Spruce", "Summit", "Tidal", "Willow", "Zephyr",
)  # fmt: skip
NAME_SECOND = (
    "Analytics", "Apps", "Bakery", "Cloud", "Consulting", "Design", "Dynamics", "Foods",
    "Health", "Labs", "Legal", "Logistics", "Media", "Robotics", "Studio", "Systems", "Travel",
    "Ventures", "Works",
)  # fmt: skip
PEOPLE = (
    "alex", "ana", "billing", "finance", "jamie", "kim", "lee", "maria", "nora", "omar",
    "priya", "sam", "tom", "yuki",
)  # fmt: skip


def _names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    companies = rng.sample([f"{a} {b}" for a in NAME_FIRST for b in NAME_SECOND], count)
    return [(name, _email(rng, name)) for name in companies]


def _email(rng: random.Random, company: str, instead_of: str = "") -> str:
    person = rng.choice([p for p in PEOPLE if not instead_of.startswith(f"{p}@")])
    return f"{person}@{company.lower().replace(' ', '-')}.example"


# --- rendering: what Stripe sends ------------------------------------------------------------


class _Ids:
    """Stripe-shaped ids (`cus_` + 14 characters, others + 24), drawn from the seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def __call__(self, prefix: str, length: int = 24) -> str:
        while True:
            found = prefix + "_" + "".join(self.rng.choices(ID_CHARACTERS, k=length))
            if found not in self.seen:
                self.seen.add(found)
                return found


@dataclass
class _Run:
    """A subscription while its events are written: what Stripe knows of it now."""

    ids: _Ids
    events: list[Event]
    customer: str
    plan: Plan
    start: int
    id: str = ""
    item_id: str = ""
    status: str = "active"
    trial: tuple[int, int] | None = None
    anchor: int = 0  # the start of the first paid period, or since the last change of interval
    renewals: int = 0  # paid periods started since `anchor`
    latest_invoice: str | None = None
    unpaid: Event | None = None  # the failed invoice, while it is unpaid
    discount: Event | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    period: tuple[int, int] = (0, 0)

    # What the subscription looks like -------------------------------------------------------

    def item(self) -> Event:
        return so.subscription_item(self.item_id, self.id, self.plan.price(), 1, self.period)

    def snapshot(self) -> Event:
        return so.subscription(
            self.id, self.customer, [self.item()],
            status=self.status, currency=self.plan.currency, created=self.start,
            discounts=[self.discount["id"]] if self.discount else [],
            latest_invoice=self.latest_invoice, cancel_at_period_end=self.cancel_at_period_end,
            canceled_at=self.canceled_at, ended_at=self.ended_at, trial=self.trial,
        )  # fmt: skip

    def emit(
        self, event_type: str, at: int, obj: Event, previous: dict[str, Any] | None = None
    ) -> None:
        self.events.append(so.event(self.ids("evt"), event_type, at, obj, previous))

    def updated(self, at: int, previous: dict[str, Any]) -> None:
        self.emit("customer.subscription.updated", at, self.snapshot(), previous)

    def amount_due(self) -> int:
        if self.discount is None:
            return self.plan.amount
        return self.plan.amount * (100 - int(self.discount["coupon"]["percent_off"])) // 100

    def renewal(self, period: int) -> int:
        return add_months(self.anchor, period * self.plan.months)

    # What happens to it ---------------------------------------------------------------------

    def sign_up(self, trial: bool) -> None:
        self.id, self.item_id = self.ids("sub"), self.ids("si", 14)
        if trial:
            self.trial = (self.start, self.start + TRIAL_DAYS * DAY)
            self.status, self.period = "trialing", self.trial
            self.anchor = self.trial[1]
            self.emit("customer.subscription.created", self.start, self.snapshot())
            return
        self.anchor = self.start
        self.period = (self.start, self.renewal(1))
        self.latest_invoice = self.ids("in")
        self.emit("customer.subscription.created", self.start, self.snapshot())
        self.paid_invoice(self.start, "subscription_create", self.start + 5)
        self.renewals = 1

    def paid_invoice(self, created: int, reason: str, paid_at: int) -> None:
        assert self.latest_invoice is not None
        body = so.invoice(
            self.latest_invoice, self.ids("il"), self.item(), customer_id=self.customer,
            created=created, billing_reason=reason, amount_due=self.amount_due(), paid_at=paid_at,
        )  # fmt: skip
        self.emit("invoice.paid", paid_at, body)

    def advance(self, until: int) -> None:
        """Every renewal before `until`: a new period, its invoice paid an hour later."""
        while self.ended_at is None and (at := self.renewal(self.renewals)) < until:
            assert self.unpaid is None, "a renewal while the last one is unpaid"
            self.period = (at, self.renewal(self.renewals + 1))
            self.latest_invoice = self.ids("in")
            if self.status == "trialing":
                self.status = "active"
                self.updated(at, {"status": "trialing", "latest_invoice": None})
            self.paid_invoice(at, "subscription_cycle", at + HOUR)
            self.renewals += 1

    def fail_renewal(self, period: int) -> None:
        """The renewal of `period` fails: the invoice stays open, the subscription past_due."""
        at = self.renewal(period)
        self.advance(at)
        assert self.renewals == period, "the failing renewal is not the next one"
        self.period = (at, self.renewal(period + 1))
        previous_invoice, self.latest_invoice = self.latest_invoice, self.ids("in")
        self.unpaid = so.invoice(
            self.latest_invoice, self.ids("il"), self.item(), customer_id=self.customer,
            created=at, billing_reason="subscription_cycle", amount_due=self.amount_due(),
            paid_at=None,
        )  # fmt: skip
        self.renewals += 1
        self.emit("invoice.payment_failed", at + HOUR, self.unpaid)
        self.status = "past_due"
        self.updated(at + HOUR, {"status": "active", "latest_invoice": previous_invoice})

    def retry_fails(self, at: int) -> None:
        assert self.unpaid is not None
        self.unpaid = {**self.unpaid, "attempt_count": self.unpaid["attempt_count"] + 1}
        self.emit("invoice.payment_failed", at, self.unpaid)

    def pay(self, at: int) -> None:
        """The unpaid invoice is paid at last: the subscription is active again."""
        assert self.unpaid is not None
        due = self.unpaid["amount_due"]
        paid = {
            **self.unpaid,
            "status": "paid",
            "amount_paid": due,
            "amount_remaining": 0,
            "attempt_count": self.unpaid["attempt_count"] + 1,
            "status_transitions": {**self.unpaid["status_transitions"], "paid_at": at},
        }
        self.unpaid = None
        self.emit("invoice.paid", at, paid)
        self.status = "active"
        self.updated(at, {"status": "past_due"})

    def change(self, at: int, plan: Plan) -> None:
        """A new plan from `at`; a new interval starts a new period, invoiced at once."""
        self.advance(at)
        before = self.item()
        new_interval = plan.interval != self.plan.interval
        self.plan = plan
        if new_interval:
            self.anchor, self.renewals = at, 0
            self.period = (at, self.renewal(1))
            self.latest_invoice = self.ids("in")
        self.updated(at, {"items": {"object": "list", "data": [before]}})
        if new_interval:
            self.paid_invoice(at, "subscription_update", at + 5)
            self.renewals = 1

    def add_discount(self, at: int) -> None:
        self.advance(at)
        self.discount = so.discount(
            self.ids("di"), RETENTION, customer_id=self.customer, sub_id=self.id,
            start=at, end=add_months(self.period[0], 3 * self.plan.months),
        )  # fmt: skip
        self.emit("customer.discount.created", at, self.discount)
        self.updated(at, {"discounts": []})

    def remove_discount(self, at: int) -> None:
        """The coupon has run its three months: Stripe removes it at the renewal."""
        self.advance(at)
        assert self.discount is not None
        removed, self.discount = self.discount, None
        self.emit("customer.discount.deleted", at, removed)
        self.updated(at, {"discounts": [removed["id"]]})

    def cancel_at_end_of_period(self, at: int) -> None:
        self.advance(at)
        self.cancel_at_period_end, self.canceled_at = True, at
        self.updated(at, {"cancel_at_period_end": False, "canceled_at": None})

    def end(self, at: int) -> None:
        self.advance(at)
        self.status, self.ended_at = "canceled", at
        self.canceled_at = self.canceled_at or at
        self.emit("customer.subscription.deleted", at, self.snapshot())


def _render_stint(ids: _Ids, customer: str, stint: Stint, end: int) -> list[Event]:
    run = _Run(ids, [], customer, stint.plan, stint.start)
    run.sign_up(stint.trial)
    if stint.lapses:
        run.end(run.anchor)
    for episode in stint.episodes:
        at = run.renewal(episode.period)
        match episode.kind:
            case "change":
                assert episode.plan is not None
                run.change(at + 15 * DAY, episode.plan)
            case "paid_late":
                run.fail_renewal(episode.period)
                run.pay(at + episode.days * DAY)
            case "changed_while_unpaid":
                assert episode.plan is not None
                run.fail_renewal(episode.period)
                run.change(at + 3 * DAY, episode.plan)
                run.pay(at + 7 * DAY)
            case "discount":
                run.add_discount(at + 15 * DAY)
                run.remove_discount(run.renewal(episode.period + 3))
            case "cancel":
                run.cancel_at_end_of_period(at + 10 * DAY)
                run.end(run.renewal(episode.period + 1))
            case "unpaid_cancel":
                run.fail_renewal(episode.period)
                run.retry_fails(at + 3 * DAY)
                run.retry_fails(at + 7 * DAY)
                run.end(at + 14 * DAY)
            case "still_unpaid":
                run.fail_renewal(episode.period)
                if at + 3 * DAY < end:
                    run.retry_fails(at + 3 * DAY)
            case _:
                raise ValueError(f"unknown episode {episode.kind!r}")
    if run.unpaid is None:
        run.advance(end)
    return run.events


def _render_customer(ids: _Ids, customer: Customer, end: int) -> list[Event]:
    first = customer.stints[0].start
    created = first - 600
    events = [
        so.event(
            ids("evt"), "customer.created", created,
            so.customer(customer.id, customer.name, customer.email, created),
        )
    ]  # fmt: skip
    currency = customer.stints[0].plan.currency
    for stint in customer.stints:
        events += _render_stint(ids, customer.id, stint, end)
    if customer.new_email is not None:
        at, email = customer.new_email
        updated = so.customer(customer.id, customer.name, email, created, currency)
        events.append(
            so.event(ids("evt"), "customer.updated", at, updated, {"email": customer.email})
        )
    return events


# --- the whole account -----------------------------------------------------------------------


def _cast(rng: random.Random, window: Window) -> list[Customer]:
    roles = [role for role in (*USD_ROLES, *EUR_ROLES) for _ in range(role.count)]
    rng.shuffle(roles)
    ids = _Ids(rng)
    cast = []
    for role, (name, email) in zip(roles, _names(rng, len(roles)), strict=True):
        stints = _stints(rng, role, window)
        new_email = None
        if rng.random() < 0.1:
            at = rng.randint(stints[0].start + DAY, window.end - DAY)
            new_email = (at, _email(rng, name, instead_of=email))
        cast.append(Customer(ids("cus", 14), name, email, stints, new_email))
    return cast


def demo_events(final: Month, seed: int = DEFAULT_SEED) -> list[Event]:
    """Every event of the demo account, in the order Stripe created them."""
    window = Window.ending(final)
    rng = random.Random(seed)
    cast = _cast(rng, window)
    ids = _Ids(random.Random(f"{seed}:ids"))
    events = [e for customer in cast for e in _render_customer(ids, customer, window.end)]
    assert all(window.start <= e["created"] < window.end for e in events)
    return sorted(events, key=lambda e: (e["created"], e["id"]))
