"""Push subscriptions in SQL, on SQLite and PostgreSQL: one row per endpoint, the premium and
upgrade-holder queries the sender uses, and deletion with the account or on the service's 410."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Tier
from tradesignals.storage.accounts import GrantUpgrade, RevokeUpgrade, SqlAccountStore
from tradesignals.storage.push import SqlPushStore
from tradesignals.storage.repositories import SqlUserRepository

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SIG = "0123456789abcdef012345"


def test_subscriptions_per_endpoint_and_the_sender_queries(engine: Engine) -> None:
    users, push, accounts = SqlUserRepository(engine), SqlPushStore(engine), SqlAccountStore(engine)
    prem = users.create("prem@example.com", "h", tier=Tier.PREMIUM)
    cons = users.create("cons@example.com", "h", tier=Tier.PREMIUM)
    accounts.answer_profile(cons.id, ProfileName.CONSERVATIVE)
    unanswered_aggr = users.create(
        "aggr@example.com", "h", tier=Tier.PREMIUM, risk_profile=ProfileName.AGGRESSIVE
    )
    free = users.create("free@example.com", "h")

    a = push.subscribe(prem.id, "https://push.example/a", "P" * 87, "A" * 22, NOW)
    push.subscribe(cons.id, "https://push.example/b", "P" * 87, "A" * 22, NOW)
    push.subscribe(unanswered_aggr.id, "https://push.example/c", "P" * 87, "A" * 22, NOW)
    f = push.subscribe(free.id, "https://push.example/f", "P" * 87, "A" * 22, NOW)
    assert a.created_at == NOW and a.created_at.tzinfo is UTC

    targets = {t.subscription.endpoint: t.profile for t in push.premium_targets()}
    # the profile the API fits to: the stored one once answered, moderate until then
    assert targets == {
        "https://push.example/a": ProfileName.MODERATE,
        "https://push.example/b": ProfileName.CONSERVATIVE,
        "https://push.example/c": ProfileName.MODERATE,
    }

    # the same endpoint again (re-subscribe, or another account in that browser) moves, never doubles
    moved = push.subscribe(free.id, "https://push.example/a", "Q" * 87, "B" * 22, NOW + timedelta(hours=1))
    assert moved.id == a.id and moved.user_id == free.id and moved.p256dh == "Q" * 87
    assert push.of_user(prem.id) == []
    assert [s.endpoint for s in push.of_user(free.id)] == ["https://push.example/a", "https://push.example/f"]

    # upgrade holders: in force at the close only (not lapsed, not revoked)
    effects = [
        GrantUpgrade(free.id, SIG, NOW + timedelta(hours=72), "ref-1"),
        GrantUpgrade(cons.id, SIG, NOW + timedelta(hours=1), "ref-2"),
    ]
    assert accounts.apply_event("evt-1", "local", "test", NOW, effects)  # type: ignore[arg-type]
    holders = push.upgrade_targets(SIG, NOW + timedelta(hours=2))
    assert {s.user_id for s in holders} == {free.id}
    assert {s.user_id for s in push.upgrade_targets(SIG, NOW)} == {free.id, cons.id}
    assert accounts.apply_event("evt-2", "local", "test", NOW, [RevokeUpgrade("ref-1")])
    assert {s.user_id for s in push.upgrade_targets(SIG, NOW + timedelta(hours=2))} == set()
    assert push.upgrade_targets("ffffffffffffffffffffff", NOW) == []

    assert push.unsubscribe(prem.id, "https://push.example/f") is False  # not theirs
    assert push.unsubscribe(free.id, "https://push.example/f") is True
    assert push.forget("https://push.example/b") is True and push.forget("https://push.example/b") is False
    assert push.of_user(cons.id) == []
    assert accounts.delete_user(free.id)
    assert push.of_user(free.id) == [] and f.id not in {t.subscription.id for t in push.premium_targets()}
