from ledger.rules.entries import Category, active_effect, delinquent_effect
from ledger.rules.movements import Change, Lifecycle, classify, next_lifecycle


def moves(
    changes: list[Change], lifecycle: Lifecycle = Lifecycle.LIVE, before: int = 0
) -> list[tuple[str, Category, int]]:
    return [(m.subscription_id, m.category, m.amount) for m in classify(changes, lifecycle, before)]


def change(sub: str, a0: int, d0: int, a1: int, d1: int, ended: bool = False) -> Change:
    return Change(sub, a0, d0, a1, d1, ended)


def test_new_reactivation_expansion_from_zero() -> None:
    assert moves([change("s", 0, 0, 100, 0)], Lifecycle.NEVER) == [("s", Category.NEW, 100)]
    assert moves([change("s", 0, 0, 100, 0)], Lifecycle.CHURNED) == [
        ("s", Category.REACTIVATION, 100)
    ]
    # a paused (not churned) customer coming back is expansion, even from 0
    assert moves([change("s", 0, 0, 100, 0)], Lifecycle.LIVE) == [("s", Category.EXPANSION, 100)]


def test_expansion_and_contraction_above_zero() -> None:
    assert moves([change("s", 100, 0, 150, 0)], before=100) == [("s", Category.EXPANSION, 50)]
    assert moves([change("s", 100, 0, 60, 0)], before=100) == [("s", Category.CONTRACTION, -40)]
    # a second subscription is expansion
    assert moves([change("t", 0, 0, 30, 0)], Lifecycle.NEVER, before=100) == [
        ("t", Category.EXPANSION, 30)
    ]


def test_falling_to_zero_churn_or_contraction() -> None:
    assert moves([change("s", 100, 0, 0, 0, ended=True)], before=100) == [
        ("s", Category.CHURN, -100)
    ]
    assert moves([change("s", 100, 0, 0, 0)], before=100) == [("s", Category.CONTRACTION, -100)]
    # an ending while another subscription keeps MRR is contraction
    assert moves([change("s", 100, 0, 0, 0, ended=True)], before=150) == [
        ("s", Category.CONTRACTION, -100)
    ]


def test_delinquent_and_recovered() -> None:
    assert moves([change("s", 100, 0, 0, 100)], before=100) == [("s", Category.DELINQUENT, -100)]
    assert moves([change("s", 0, 100, 100, 0)]) == [("s", Category.RECOVERED, 100)]


def test_recovered_is_the_balance_held_rest_is_expansion_or_contraction() -> None:
    assert moves([change("s", 0, 100, 130, 0)]) == [
        ("s", Category.RECOVERED, 100),
        ("s", Category.EXPANSION, 30),
    ]
    assert moves([change("s", 0, 100, 70, 0)]) == [
        ("s", Category.RECOVERED, 100),
        ("s", Category.CONTRACTION, -30),
    ]


def test_recovering_customer_is_never_new_or_reactivation() -> None:
    got = moves([change("s", 0, 100, 100, 0), change("t", 0, 0, 50, 0)], Lifecycle.CHURNED)
    assert got == [("s", Category.RECOVERED, 100), ("t", Category.EXPANSION, 50)]


def test_delinquent_churn_and_change() -> None:
    assert moves([change("s", 0, 100, 0, 0, ended=True)]) == [
        ("s", Category.DELINQUENT_CHURN, -100)
    ]
    assert moves([change("s", 0, 100, 0, 120)]) == [("s", Category.DELINQUENT_CHANGE, 20)]
    assert moves([change("s", 0, 100, 0, 0)]) == [("s", Category.DELINQUENT_CHANGE, -100)]


def test_failure_with_a_new_price_moves_the_old_then_changes() -> None:
    assert moves([change("s", 100, 0, 0, 120)], before=100) == [
        ("s", Category.DELINQUENT, -100),
        ("s", Category.DELINQUENT_CHANGE, 20),
    ]


def test_one_event_moving_several_subscriptions_is_classified_at_customer_level() -> None:
    got = moves([change("b", 100, 0, 50, 0), change("a", 200, 0, 100, 0)], before=300)
    assert got == [("a", Category.CONTRACTION, -100), ("b", Category.CONTRACTION, -50)]


def test_effects_follow_the_sign_conventions() -> None:
    changes = [change("s", 0, 100, 130, 0), change("t", 80, 0, 0, 80)]
    got = classify(changes, Lifecycle.LIVE, 80)
    assert sum(active_effect(m.category, m.amount) for m in got) == 130 - 80
    assert sum(delinquent_effect(m.category, m.amount) for m in got) == 80 - 100


def test_no_zero_movements() -> None:
    assert moves([change("s", 100, 0, 100, 0)], before=100) == []


def test_lifecycle() -> None:
    assert next_lifecycle(Lifecycle.NEVER, 100, 0, True) is Lifecycle.LIVE
    assert next_lifecycle(Lifecycle.LIVE, 0, 0, holding=True) is Lifecycle.LIVE  # paused
    assert next_lifecycle(Lifecycle.LIVE, 0, 0, holding=False) is Lifecycle.CHURNED
    assert next_lifecycle(Lifecycle.NEVER, 0, 0, holding=False) is Lifecycle.NEVER
    assert next_lifecycle(Lifecycle.CHURNED, 0, 50, False) is Lifecycle.LIVE
