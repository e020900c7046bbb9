"""Notification reporting views (migration 0005) and ``jobs.notify.report`` on real PostgreSQL.

Facts are inserted directly (small fixtures that can be checked by hand) and every column of
every view is compared with the same measure computed here, in Python, from the inserted rows.
One test runs the real planner, relay and feedback refresh and checks the run report against
what they returned and wrote.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import astuple, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from jobs.core.db import copy_rows
from jobs.notify import policy
from jobs.notify.channels import OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from jobs.notify.feedback import refresh_derived
from jobs.notify.plan import plan_notifications
from jobs.notify.relay import relay_pending
from jobs.notify.report import main as report_main
from jobs.notify.report import notification_report
from tests.support.notify_data import AT, USERS, add_items, add_users, publish

VIEWS = (
    "campaign_report",
    "dead_letters",
    "delivery_health",
    "notification_daily",
    "notification_run_report",
    "send_hour_distribution",
)
PII_COLUMNS = {"email", "phone", "push_token", "webhook_url"}
Z = 1.96

# --- facts, as inserted -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    run_key: str
    user_id: str
    candidate_key: str
    source: str
    item_id: str | None
    channel: str | None
    expected_value: float
    decision: str
    idempotency_key: str
    decided_at: datetime
    campaign_id: str | None
    transactional: bool
    scheduled_at: datetime | None


@dataclass(frozen=True)
class Message:
    idempotency_key: str
    run_key: str
    user_id: str
    channel: str
    source: str
    item_id: str | None
    scheduled_at: datetime
    payload: str
    status: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    campaign_id: str | None


@dataclass(frozen=True)
class Attempt:
    idempotency_key: str
    attempt: int
    attempted_at: datetime
    channel: str
    outcome: str
    error: str | None


@dataclass(frozen=True)
class Outcome:
    idempotency_key: str
    run_key: str
    user_id: str
    campaign_id: str | None
    source: str
    channel: str
    sent_at: datetime
    opened_at: datetime | None
    clicked_at: datetime | None
    converted_at: datetime | None
    revenue: float


@dataclass(frozen=True)
class Arm:
    run_key: str
    user_id: str
    campaign_id: str | None
    arm: str
    scheduled_at: datetime
    converted: bool
    revenue: float


@dataclass(frozen=True)
class Run:
    run_key: str
    logical_time: datetime
    horizon_hours: int
    campaign_id: str | None
    users: int
    decisions: str


_LAST_ERROR = {
    "dead": "rejected: unknown token",
    "cancelled": "consent withdrawn",
    "expired": "expired before delivery",
}


@dataclass
class World:
    """The inserted facts; :meth:`load` writes them, the tests recompute every measure from them."""

    timezones: dict[str, str] = field(default_factory=dict)
    campaigns: dict[str, str] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    arms: list[Arm] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def decide(self, run_key, at, user, decision, campaign=None, channel="push", delay_hours=0) -> Decision:
        n = len(self.decisions)
        row = Decision(
            run_key=run_key,
            user_id=user,
            candidate_key=f"cand-{n}",
            source="campaign" if campaign else "recommendation",
            item_id=f"i{n}",
            channel=channel,
            expected_value=1.0 / (n + 1),
            decision=decision,
            idempotency_key=f"key-{n:04d}",
            decided_at=at,
            campaign_id=campaign,
            transactional=False,
            scheduled_at=at + timedelta(hours=delay_hours),
        )
        self.decisions.append(row)
        return row

    def queue(self, d: Decision, status: str, attempts: int, engagement=None) -> None:
        """The outbox row of a queued decision, its attempts log as the relay writes it, and
        (when delivered) its outcome ``(opened, clicked, converted, revenue)``."""
        start = d.scheduled_at
        if status in ("sent", "dead"):
            outcomes = ["retry"] * (attempts - 1) + [status]
        elif status == "pending":
            outcomes = ["retry"] * attempts
        else:  # cancelled and expired are logged, but not counted as attempts
            outcomes = [status]
        for number, outcome in enumerate(outcomes, start=1):
            error = "gateway timeout" if outcome == "retry" else _LAST_ERROR.get(outcome)
            self.attempts.append(
                Attempt(d.idempotency_key, number, start + timedelta(minutes=number), d.channel, outcome, error)
            )
        self.messages.append(
            Message(
                idempotency_key=d.idempotency_key,
                run_key=d.run_key,
                user_id=d.user_id,
                channel=d.channel,
                source=d.source,
                item_id=d.item_id,
                scheduled_at=start,
                payload="{}",
                status=status,
                attempts=attempts,
                sent_at=start + timedelta(minutes=attempts) if status == "sent" else None,
                last_error=("gateway timeout" if attempts else None)
                if status == "pending"
                else _LAST_ERROR.get(status),
                campaign_id=d.campaign_id,
            )
        )
        if status == "sent":
            opened, clicked, converted, revenue = engagement
            self.outcomes.append(
                Outcome(
                    idempotency_key=d.idempotency_key,
                    run_key=d.run_key,
                    user_id=d.user_id,
                    campaign_id=d.campaign_id,
                    source=d.source,
                    channel=d.channel,
                    sent_at=start,
                    opened_at=start + timedelta(minutes=30) if opened else None,
                    clicked_at=start + timedelta(minutes=31) if clicked else None,
                    converted_at=start + timedelta(hours=2) if converted else None,
                    revenue=revenue,
                )
            )

    def split(self, run_key, at, campaign, arm, users, converted) -> None:
        for n in range(users):
            self.arms.append(
                Arm(run_key, f"{run_key}-{arm}-{n:03d}", campaign, arm, at, n < converted, 9.5 if n < converted else 0)
            )

    def record_run(self, run_key, at, horizon_hours, campaign) -> None:
        mine = [d for d in self.decisions if d.run_key == run_key]
        counts = Counter(d.decision for d in mine)
        self.runs.append(
            Run(run_key, at, horizon_hours, campaign, len({d.user_id for d in mine}), json.dumps(dict(counts)))
        )

    def load(self, engine) -> None:
        with engine.begin() as conn:
            copy_rows(conn, "push.users", ["user_id", "timezone"], self.timezones.items())
            copy_rows(
                conn,
                "push.campaigns",
                ["campaign_id", "name", "valid_from", "valid_to", "channels"],
                [(c, name, "2026-11-01", "2026-12-01", ["push", "email"]) for c, name in self.campaigns.items()],
            )
            for table, rows in (
                ("push.notification_decisions", self.decisions),
                ("push.notification_ledger", self.messages),
                ("push.delivery_attempts", self.attempts),
                ("push.message_outcomes", self.outcomes),
                ("push.decision_outcomes", self.arms),
                ("push.notification_runs", self.runs),
            ):
                copy_rows(conn, table, [f.name for f in fields(rows[0])], [astuple(row) for row in rows])


RUN_A, AT_A = "notify-20261125T1200-h24", datetime(2026, 11, 25, 12, tzinfo=UTC)
RUN_B, AT_B = "notify-20261126T0900-h1-sale", datetime(2026, 11, 26, 9, tzinfo=UTC)
# 02:00 UTC is still the 26th in New York: the UTC day must not follow the session's TimeZone.
RUN_C, AT_C = "notify-20261127T0200-h1-winter", datetime(2026, 11, 27, 2, tzinfo=UTC)
RUN_D, AT_D = "notify-20261127T0300-h1-sale", datetime(2026, 11, 27, 3, tzinfo=UTC)
RUN_E, AT_E = "notify-20261127T0400-h1", datetime(2026, 11, 27, 4, tzinfo=UTC)  # crashed: no run row
RUN_F, AT_F = "notify-20261127T0500-h1", datetime(2026, 11, 27, 5, tzinfo=UTC)  # nothing to decide
TIMEZONES = ("UTC", "America/New_York", "Asia/Tokyo", "Asia/Kolkata")


def build_world() -> World:
    w = World()
    w.campaigns["sale"] = "Black Friday sale"  # "winter" is not in the campaign snapshot any more
    people = [f"a{n:02d}" for n in range(12)]
    w.timezones.update({u: TIMEZONES[n % len(TIMEZONES)] for n, u in enumerate(people)})

    # Run A: every reason code, an unknown legacy code, a user unknown to push.users ("ghost"),
    # 400 treatment users with 60 conversions against 100 control users with 10.
    plan_a = (
        ["sent"] * 8
        + ["deferred_quiet_hours"] * 2
        + ["suppressed_consent"] * 2
        + ["holdout"] * 3
        + ["duplicate", "expired", "expired_quiet_hours"]
        + ["capped_min_gap"] * 4
        + ["capped_daily"] * 2
        + ["capped_weekly", "capped_channel", "capped_campaign", "skipped_uplift", "legacy_reason"]
    )
    for i, decision in enumerate(plan_a):
        w.decide(
            RUN_A,
            AT_A,
            "ghost" if i == 7 else people[i % len(people)],
            decision,
            campaign="sale" if i % 3 == 0 else None,
            channel="email" if i % 2 else "push",
            delay_hours=20 if decision == "deferred_quiet_hours" else i % 5,
        )
    fates_a = [
        ("sent", 1, (True, True, True, 59.9)),
        ("sent", 2, (True, False, False, 0.0)),
        ("sent", 1, (False, False, False, 0.0)),
        ("sent", 3, (True, True, False, 0.0)),
        ("dead", 5, None),
        ("cancelled", 0, None),
        ("expired", 0, None),
        ("pending", 1, None),
        ("sent", 1, (True, True, True, 20.0)),
        ("dead", 1, None),
    ]
    queued_a = [d for d in w.decisions if d.decision in policy.ACCEPTED]
    assert len(queued_a) == len(fates_a)
    for d, (status, attempts, engagement) in zip(queued_a, fates_a, strict=True):
        w.queue(d, status, attempts, engagement)
    w.split(RUN_A, AT_A, None, "treatment", 400, 60)
    w.split(RUN_A, AT_A, None, "control", 100, 10)
    w.record_run(RUN_A, AT_A, 24, None)

    # Run B (campaign "sale"): no control group at all.
    w.timezones.update({f"b{n:02d}": "Europe/Berlin" for n in range(6)})
    plan_b = ["sent"] * 4 + ["capped_campaign"] * 2
    for i, decision in enumerate(plan_b):
        w.decide(RUN_B, AT_B, f"b{i:02d}", decision, campaign="sale", delay_hours=i)
    fates_b = [
        ("sent", 1, (True, True, True, 30.0)),
        ("sent", 1, (False, False, False, 0.0)),
        ("sent", 2, (True, False, False, 0.0)),
        ("sent", 4, (False, False, False, 0.0)),
    ]
    for d, (status, attempts, engagement) in zip(w.decisions[-6:-2], fates_b, strict=True):
        w.queue(d, status, attempts, engagement)
    w.split(RUN_B, AT_B, "sale", "treatment", 6, 1)
    w.record_run(RUN_B, AT_B, 1, "sale")

    # Run C (campaign "winter", by SMS): the control group never converted (p2 = 0).
    w.timezones.update({f"c{n:02d}": "America/New_York" for n in range(5)})
    for i, decision in enumerate(["sent"] * 3 + ["holdout"] * 2):
        w.decide(RUN_C, AT_C, f"c{i:02d}", decision, campaign="winter", channel="sms")
    for d, engagement in zip(
        w.decisions[-5:-2],
        [(True, True, False, 0.0), (False, False, False, 0.0), (True, False, False, 0.0)],
        strict=True,
    ):
        w.queue(d, "sent", 1, engagement)
    w.split(RUN_C, AT_C, "winter", "treatment", 50, 5)
    w.split(RUN_C, AT_C, "winter", "control", 20, 0)
    w.record_run(RUN_C, AT_C, 1, "winter")

    # Run D (campaign "sale", by e-mail): the treatment arm never converted (p1 = 0).
    w.timezones.update({f"d{n:02d}": "Asia/Tokyo" for n in range(3)})
    for i, decision in enumerate(["sent", "sent", "holdout"]):
        w.decide(RUN_D, AT_D, f"d{i:02d}", decision, campaign="sale", channel="email")
    w.queue(w.decisions[-3], "sent", 1, (False, False, False, 0.0))
    w.queue(w.decisions[-2], "sent", 2, (True, False, False, 0.0))
    w.split(RUN_D, AT_D, "sale", "treatment", 30, 0)
    w.split(RUN_D, AT_D, "sale", "control", 10, 2)
    w.record_run(RUN_D, AT_D, 1, "sale")

    # Run E crashed after recording its decisions (no run row); run F had nothing to decide.
    w.timezones["e00"] = "UTC"
    for decision in ["sent", "capped_daily", "capped_daily"]:
        w.decide(RUN_E, AT_E, "e00", decision)
    w.queue(w.decisions[-3], "pending", 0)
    w.runs.append(Run(RUN_F, AT_F, 1, None, 0, "{}"))
    return w


@pytest.fixture
def world(empty_db) -> World:
    w = build_world()
    w.load(empty_db)
    return w


# --- the measures, computed independently ---------------------------------------------------------


def lift(n1: int, x1: int, n2: int, x2: int) -> dict:
    p1 = x1 / n1 if n1 else None
    p2 = x2 / n2 if n2 else None
    both = p1 is not None and p2 is not None
    wald = Z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) if both else None
    katz = Z * math.sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2)) if both and p1 > 0 and p2 > 0 else None
    return {
        "treatment_conversion_rate": p1,
        "control_conversion_rate": p2,
        "absolute_lift": p1 - p2 if both else None,
        "absolute_lift_ci_low": p1 - p2 - wald if both else None,
        "absolute_lift_ci_high": p1 - p2 + wald if both else None,
        "relative_lift": p1 / p2 - 1 if both and p2 > 0 else None,
        "relative_lift_ci_low": math.exp(math.log(p1 / p2) - katz) - 1 if katz is not None else None,
        "relative_lift_ci_high": math.exp(math.log(p1 / p2) + katz) - 1 if katz is not None else None,
    }


def measures(decisions: list[Decision], messages: list[Message], outcomes: list[Outcome], arms: list[Arm]) -> dict:
    codes = Counter(d.decision for d in decisions)
    status = Counter(m.status for m in messages)
    delivered = status["sent"]
    clicks = sum(o.clicked_at is not None for o in outcomes)
    conversions = sum(o.converted_at is not None for o in outcomes)
    n1 = sum(a.arm == "treatment" for a in arms)
    x1 = sum(a.arm == "treatment" and a.converted for a in arms)
    n2 = sum(a.arm == "control" for a in arms)
    x2 = sum(a.arm == "control" and a.converted for a in arms)
    return {
        "candidates": len(decisions),
        "queued": codes["sent"] + codes["deferred_quiet_hours"],
        "deferred": codes["deferred_quiet_hours"],
        "suppressed_consent": codes["suppressed_consent"],
        "holdout": codes["holdout"],
        "duplicate": codes["duplicate"],
        "expired": codes["expired"] + codes["expired_quiet_hours"],
        "capped_min_gap": codes["capped_min_gap"],
        "capped_daily": codes["capped_daily"],
        "capped_weekly": codes["capped_weekly"],
        "capped_channel": codes["capped_channel"],
        "capped_campaign": codes["capped_campaign"],
        "skipped_uplift": codes["skipped_uplift"],
        "other_decisions": sum(n for code, n in codes.items() if code not in policy.REASON_CODES),
        "delivered": delivered,
        "dead": status["dead"],
        "cancelled": status["cancelled"],
        "expired_in_outbox": status["expired"],
        "pending": status["pending"],
        "opens": sum(o.opened_at is not None for o in outcomes),
        "clicks": clicks,
        "conversions": conversions,
        "revenue": sum(o.revenue for o in outcomes),
        "ctr": clicks / delivered if delivered else None,
        "cvr": conversions / delivered if delivered else None,
        "treatment_users": n1,
        "treatment_conversions": x1,
        "control_users": n2,
        "control_conversions": x2,
        **lift(n1, x1, n2, x2),
    }


def expected_run_report(w: World) -> dict[str, dict]:
    runs = {r.run_key: r for r in w.runs}
    expected = {}
    for key in set(runs) | {d.run_key for d in w.decisions}:
        mine = [d for d in w.decisions if d.run_key == key]
        run = runs.get(key)
        expected[key] = {
            "run_key": key,
            "logical_time": run.logical_time if run else min(d.decided_at for d in mine),
            "horizon_hours": run.horizon_hours if run else None,
            "campaign_id": run.campaign_id if run else None,
            "users": run.users if run else len({d.user_id for d in mine}),
            **measures(
                mine,
                [m for m in w.messages if m.run_key == key],
                [o for o in w.outcomes if o.run_key == key],
                [a for a in w.arms if a.run_key == key],
            ),
        }
    return expected


def expected_campaign_report(w: World) -> dict[str, dict]:
    expected = {}
    for campaign in {d.campaign_id for d in w.decisions if d.campaign_id is not None}:
        mine = [d for d in w.decisions if d.campaign_id == campaign]
        expected[campaign] = {
            "campaign_id": campaign,
            "campaign_name": w.campaigns.get(campaign),
            "runs": len({d.run_key for d in mine}),
            "first_decided_at": min(d.decided_at for d in mine),
            "last_decided_at": max(d.decided_at for d in mine),
            "users": len({d.user_id for d in mine}),
            **measures(
                mine,
                [m for m in w.messages if m.campaign_id == campaign],
                [o for o in w.outcomes if o.campaign_id == campaign],
                [a for a in w.arms if a.campaign_id == campaign],
            ),
        }
    return expected


def percentile(values: list[int], q: float) -> float | None:
    """Linear interpolation between the closest ranks (what percentile_cont computes)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def assert_row(actual: dict, expected: dict, label: str = "") -> None:
    assert set(actual) == set(expected), label
    for column, want in expected.items():
        got = actual[column]
        if want is None or got is None:
            assert (got, want) == (None, None), (label, column)
        elif isinstance(want, float) or isinstance(got, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (label, column)
        else:
            assert got == want, (label, column)


def view(engine, name: str, order: str = "1", timezone: str = "UTC") -> list[dict]:
    with engine.connect() as conn:
        conn.execute(text("SELECT set_config('TimeZone', :tz, false)"), {"tz": timezone})
        rows = [dict(row) for row in conn.execute(text(f"SELECT * FROM analytics.{name} ORDER BY {order}")).mappings()]
        conn.execute(text("RESET TimeZone"))
        conn.commit()
    return rows


# --- the views ----------------------------------------------------------------------------------


def test_run_report_matches_python_for_every_column(world, empty_db):
    rows = {row["run_key"]: row for row in view(empty_db, "notification_run_report")}
    expected = expected_run_report(world)
    assert set(rows) == set(expected) == {RUN_A, RUN_B, RUN_C, RUN_D, RUN_E, RUN_F}
    for key, want in expected.items():
        assert_row(rows[key], want, key)
    # The accounting identity, and the NULL cases spelled out.
    for row in rows.values():
        suppressed = sum(
            row[c]
            for c in (
                "suppressed_consent",
                "holdout",
                "duplicate",
                "expired",
                "capped_min_gap",
                "capped_daily",
                "capped_weekly",
                "capped_channel",
                "capped_campaign",
                "skipped_uplift",
            )
        )
        assert row["candidates"] == row["queued"] + suppressed + row["other_decisions"]
    assert rows[RUN_A]["skipped_uplift"] == 1
    assert rows[RUN_A]["other_decisions"] == 1
    no_control = rows[RUN_B]
    assert no_control["control_users"] == 0
    assert no_control["treatment_conversion_rate"] == pytest.approx(1 / 6)
    assert all(
        no_control[c] is None
        for c in ("control_conversion_rate", "absolute_lift", "absolute_lift_ci_low", "relative_lift")
    )
    zero_control = rows[RUN_C]
    assert zero_control["control_conversion_rate"] == 0
    assert zero_control["absolute_lift"] == pytest.approx(0.1)
    assert zero_control["relative_lift"] is None
    assert zero_control["relative_lift_ci_low"] is None
    assert zero_control["relative_lift_ci_high"] is None
    zero_treatment = rows[RUN_D]
    assert zero_treatment["relative_lift"] == pytest.approx(-1.0)
    assert zero_treatment["relative_lift_ci_low"] is None
    assert zero_treatment["relative_lift_ci_high"] is None
    crashed = rows[RUN_E]
    assert (crashed["logical_time"], crashed["horizon_hours"], crashed["users"]) == (AT_E, None, 1)
    empty = rows[RUN_F]
    assert empty["candidates"] == empty["delivered"] == empty["revenue"] == 0
    assert empty["ctr"] is None
    assert empty["cvr"] is None
    assert empty["treatment_conversion_rate"] is None


def test_lift_of_400_treated_with_60_conversions_against_100_held_out_with_10(world, empty_db):
    row = next(r for r in view(empty_db, "notification_run_report") if r["run_key"] == RUN_A)
    assert (row["treatment_users"], row["treatment_conversions"]) == (400, 60)
    assert (row["control_users"], row["control_conversions"]) == (100, 10)
    # By hand: p1 = 0.15, p2 = 0.10; SE = sqrt(.15 * .85 / 400 + .1 * .9 / 100) = 0.0349106;
    # log-RR SE = sqrt(.85 / 60 + .9 / 10) = 0.3227486.
    assert row["treatment_conversion_rate"] == pytest.approx(0.15)
    assert row["control_conversion_rate"] == pytest.approx(0.10)
    assert row["absolute_lift"] == pytest.approx(0.05)
    assert row["absolute_lift_ci_low"] == pytest.approx(0.05 - 1.96 * 0.0349106, abs=1e-6)
    assert row["absolute_lift_ci_high"] == pytest.approx(0.05 + 1.96 * 0.0349106, abs=1e-6)
    assert row["relative_lift"] == pytest.approx(0.5)
    assert row["relative_lift_ci_low"] == pytest.approx(-0.2031766, abs=1e-6)
    assert row["relative_lift_ci_high"] == pytest.approx(1.8237122, abs=1e-6)
    # Outbox and engagement of run A by hand: 10 queued -> 5 delivered, 2 dead, 1 each of the rest.
    assert [row[c] for c in ("queued", "deferred", "delivered", "dead", "cancelled", "expired_in_outbox")] == [
        10,
        2,
        5,
        2,
        1,
        1,
    ]
    assert (row["opens"], row["clicks"], row["conversions"]) == (4, 3, 2)
    assert row["revenue"] == pytest.approx(79.9)
    assert row["ctr"] == pytest.approx(0.6)
    assert row["cvr"] == pytest.approx(0.4)


def test_campaign_report_matches_python_for_every_column(world, empty_db):
    rows = {row["campaign_id"]: row for row in view(empty_db, "campaign_report")}
    expected = expected_campaign_report(world)
    assert set(rows) == set(expected) == {"sale", "winter"}
    for campaign, want in expected.items():
        assert_row(rows[campaign], want, campaign)
    sale = rows["sale"]
    assert sale["runs"] == 3  # run A's campaign candidates, runs B and D
    assert (sale["first_decided_at"], sale["last_decided_at"]) == (AT_A, AT_D)
    assert (sale["treatment_users"], sale["treatment_conversions"], sale["control_users"]) == (36, 1, 10)
    assert sale["relative_lift"] == pytest.approx((1 / 36) / 0.2 - 1)
    assert rows["winter"]["campaign_name"] is None  # not in the campaign snapshot
    assert rows["winter"]["relative_lift"] is None


@pytest.mark.parametrize("session_timezone", ["UTC", "America/New_York"])
def test_daily_decisions_and_send_hours_use_utc_days_and_local_hours(world, empty_db, session_timezone):
    daily = view(empty_db, "notification_daily", "1, 2", session_timezone)
    expected_daily = Counter((d.decided_at.astimezone(UTC).date(), d.decision) for d in world.decisions)
    assert {(r["day"], r["decision"]): r["decisions"] for r in daily} == dict(expected_daily)
    assert len(daily) == len(expected_daily)
    assert {r["day"] for r in daily} == {date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)}

    hours = view(empty_db, "send_hour_distribution", "1, 2", session_timezone)
    expected_hours = Counter()
    for d in world.decisions:
        if d.decision in policy.ACCEPTED:
            tz = world.timezones.get(d.user_id)
            local = d.scheduled_at.astimezone(ZoneInfo(tz)).hour if tz else None
            expected_hours[(d.decided_at.astimezone(UTC).date(), local)] += 1
    assert {(r["day"], r["local_hour"]): r["queued"] for r in hours} == dict(expected_hours)
    assert len(hours) == len(expected_hours)
    assert set(hours[0]) == {"day", "local_hour", "queued"}
    # By hand: a03 in Kolkata (UTC+05:30) gets 15:00 UTC -> 20:30; a01 (New York, 13:00 UTC) and
    # a08 (UTC, deferred to 08:00 UTC on the 26th) both at 8 h, counted on the day decided; the
    # user unknown to push.users has no local hour; run C's 02:00 UTC sends are 21 h in New York.
    by_hour = {(r["day"], r["local_hour"]): r["queued"] for r in hours}
    assert by_hour[(date(2026, 11, 25), 20)] == 1
    assert by_hour[(date(2026, 11, 25), 8)] == 2
    assert by_hour[(date(2026, 11, 25), None)] == 1
    assert by_hour[(date(2026, 11, 27), 21)] == 3
    assert by_hour[(date(2026, 11, 27), 12)] == 2  # run D, Tokyo
    assert sum(r["queued"] for r in hours) == sum(d.decision in policy.ACCEPTED for d in world.decisions)


def test_delivery_health_and_dead_letters(world, empty_db):
    rows = {row["channel"]: row for row in view(empty_db, "delivery_health")}
    assert set(rows) == {"push", "email", "sms"}
    for channel, row in rows.items():
        mine = [m for m in world.messages if m.channel == channel]
        tries = [a for a in world.attempts if a.channel == channel]
        status = Counter(m.status for m in mine)
        delivered_attempts = [m.attempts for m in mine if m.status == "sent"]
        assert_row(
            row,
            {
                "channel": channel,
                "messages": len(mine),
                "delivered": status["sent"],
                "attempts": len(tries),
                "retried_attempts": sum(a.outcome == "retry" for a in tries),
                "retried_messages": len({a.idempotency_key for a in tries if a.outcome == "retry"}),
                "dead_letters": status["dead"],
                "cancelled": status["cancelled"],
                "expired": status["expired"],
                "pending": status["pending"],
                "median_attempts_to_deliver": percentile(delivered_attempts, 0.5),
                "p95_attempts_to_deliver": percentile(delivered_attempts, 0.95),
            },
            channel,
        )
    # By hand: push delivered after 1, 1, 1 (run A) and 1, 1, 2, 4 (run B) attempts: median 1,
    # p95 at rank 0.95 * 6 = 5.7 -> 2 + 0.7 * (4 - 2) = 3.4; e-mail after 2, 3 (A) and 1, 2 (D).
    assert (rows["push"]["median_attempts_to_deliver"], rows["push"]["p95_attempts_to_deliver"]) == (
        1,
        pytest.approx(3.4),
    )
    assert (rows["email"]["median_attempts_to_deliver"], rows["email"]["p95_attempts_to_deliver"]) == (
        2,
        pytest.approx(2.85),
    )
    assert (rows["push"]["retried_attempts"], rows["push"]["retried_messages"], rows["push"]["dead_letters"]) == (
        4 + 1 + 3,
        3,
        1,
    )

    dead = view(empty_db, "dead_letters", "idempotency_key")
    last_attempt = {}
    for a in world.attempts:
        last_attempt[a.idempotency_key] = max(a.attempted_at, last_attempt.get(a.idempotency_key, a.attempted_at))
    expected = [
        {
            "idempotency_key": m.idempotency_key,
            "run_key": m.run_key,
            "channel": m.channel,
            "source": m.source,
            "campaign_id": m.campaign_id,
            "attempts": m.attempts,
            "last_error": m.last_error,
            "scheduled_at": m.scheduled_at,
            "last_attempt_at": last_attempt[m.idempotency_key],
        }
        for m in sorted(world.messages, key=lambda m: m.idempotency_key)
        if m.status == "dead"
    ]
    assert len(dead) == len(expected) == 2
    for got, want in zip(dead, expected, strict=True):
        assert_row(got, want, want["idempotency_key"])


def test_views_exist_and_expose_no_contact_details(engine):
    with engine.connect() as conn:
        views = set(
            conn.execute(
                text("SELECT table_name FROM information_schema.views WHERE table_schema = 'analytics'")
            ).scalars()
        )
        columns = conn.execute(
            text("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'analytics'")
        ).all()
    assert set(VIEWS) <= views
    assert {table for table, _ in columns} >= set(VIEWS)
    assert [(t, c) for t, c in columns if c in PII_COLUMNS or c in {"name", "address"}] == []


def test_report_module_and_cli(world, empty_db, settings, capsys):
    by_view = {row["run_key"]: row for row in view(empty_db, "notification_run_report")}
    assert notification_report(settings, RUN_A) == [by_view[RUN_A]]
    assert notification_report(settings, "no-such-run") == []

    # The latest 20 runs, newest first, out of 26.
    with empty_db.begin() as conn:
        copy_rows(
            conn,
            "push.notification_runs",
            ["run_key", "logical_time", "horizon_hours", "users", "decisions"],
            [(f"old-{n:02d}", AT_A - timedelta(days=n + 1), 1, 0, "{}") for n in range(20)],
        )
    latest = notification_report(settings)
    times = [row["logical_time"] for row in latest]
    assert len(latest) == 20
    assert times == sorted(times, reverse=True)
    assert [row["run_key"] for row in latest[:6]] == [RUN_F, RUN_E, RUN_D, RUN_C, RUN_B, RUN_A]
    assert latest[-1]["run_key"] == "old-13"

    assert report_main(["--run-key", RUN_A]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == 1
    assert printed[0]["run_key"] == RUN_A
    assert datetime.fromisoformat(printed[0]["logical_time"]) == AT_A
    assert printed[0]["relative_lift"] == pytest.approx(0.5)
    assert printed[0]["horizon_hours"] == 24
    assert report_main(["--run-key", "no-such-run"]) == 1
    assert json.loads(capsys.readouterr().out) == []
    assert report_main([]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 20


# --- against the real planner, relay and feedback refresh ------------------------------------------


class _ScriptedChannel:
    """Accepts every message except one it rejects for good and one it defers."""

    def __init__(self, name: str, rejected: str, deferred: str) -> None:
        self.name, self.rejected, self.deferred = name, rejected, deferred

    def send(self, message: OutboundMessage) -> None:
        if message.idempotency_key == self.rejected:
            raise PermanentDeliveryError("unknown device token")
        if message.idempotency_key == self.deferred:
            raise TransientDeliveryError("gateway busy")


def test_run_report_agrees_with_the_real_planner_relay_and_feedback(empty_db, policy_settings):
    add_users(empty_db, USERS)
    add_items(empty_db)
    publish(empty_db, USERS)
    halved = replace(policy_settings, holdout_percent=50.0, channel_rate_limits={})
    summary = plan_notifications(halved, AT)
    assert summary["decisions"]["holdout"] > 0
    assert summary["decisions"]["sent"] > 0

    with empty_db.connect() as conn:
        decided = conn.execute(
            text("SELECT user_id, decision FROM push.notification_decisions WHERE run_key = :k"),
            {"k": summary["run_key"]},
        ).all()
        queued = conn.execute(
            text("SELECT idempotency_key, user_id, channel FROM push.notification_ledger ORDER BY 1")
        ).all()
    rejected, deferred = queued[0].idempotency_key, queued[1].idempotency_key
    channels = {name: _ScriptedChannel(name, rejected, deferred) for name in ("push", "email")}
    relayed = relay_pending(halved, channels=channels, until=AT + timedelta(hours=1))
    delivered = queued[2:]
    assert relayed == {"sent": len(delivered), "retry": 1, "dead": 1}

    # Feedback: 5 delivered messages opened, 3 of them clicked, and those 3 users bought
    # (25.00 each) an hour after the click; 2 held-out users bought 10.00 each.
    control = sorted({u for u, d in decided if d == "holdout"})
    treatment = sorted({u for u, d in decided if d != "holdout"})
    clicked = delivered[:3]
    events = []
    for n, message in enumerate(delivered[:5]):
        events.append(
            (f"open-{n}", message.idempotency_key, message.user_id, "notification_open", AT + timedelta(hours=2))
        )
    for n, message in enumerate(clicked):
        events.append(
            (f"click-{n}", message.idempotency_key, message.user_id, "notification_click", AT + timedelta(hours=2))
        )
    with empty_db.begin() as conn:
        copy_rows(
            conn,
            "push.notification_feedback",
            ["event_id", "notification_id", "user_id", "event_type", "ts"],
            events,
        )
        copy_rows(
            conn,
            "push.notification_feedback",
            ["event_id", "user_id", "event_type", "item_id", "revenue", "ts"],
            [(f"buy-{m.user_id}", m.user_id, "purchase", "i1", 25.0, AT + timedelta(hours=3)) for m in clicked]
            + [(f"buy-{u}", u, "purchase", "i1", 10.0, AT + timedelta(hours=3)) for u in control[:2]],
        )
    refresh_derived(halved, AT + timedelta(days=2))

    [row] = notification_report(halved, summary["run_key"])
    # Per reason, exactly what the planner returned.
    decisions = Counter(summary["decisions"])
    assert row["queued"] - row["deferred"] == decisions["sent"]
    assert row["deferred"] == decisions["deferred_quiet_hours"]
    assert row["expired"] == decisions["expired"] + decisions["expired_quiet_hours"]
    for reason in (
        "suppressed_consent",
        "holdout",
        "duplicate",
        "capped_min_gap",
        "capped_daily",
        "capped_weekly",
        "capped_channel",
        "capped_campaign",
        "skipped_uplift",
    ):
        assert row[reason] == decisions[reason], reason
    assert row["other_decisions"] == 0
    assert row["candidates"] == sum(decisions.values()) == len(decided)
    assert row["users"] == summary["users"] == len(USERS)
    assert (row["logical_time"], row["horizon_hours"], row["campaign_id"]) == (AT, 1, None)
    # The outbox after one relay pass, and the feedback.
    assert row["queued"] == len(queued)
    assert (row["delivered"], row["dead"], row["pending"], row["cancelled"], row["expired_in_outbox"]) == (
        len(delivered),
        1,
        1,
        0,
        0,
    )
    assert (row["opens"], row["clicks"], row["conversions"], row["revenue"]) == (5, 3, 3, pytest.approx(75.0))
    assert row["ctr"] == pytest.approx(3 / len(delivered))
    assert row["cvr"] == pytest.approx(3 / len(delivered))
    assert (row["treatment_users"], row["treatment_conversions"]) == (len(treatment), 3)
    assert (row["control_users"], row["control_conversions"]) == (len(control), 2)
    want = lift(len(treatment), 3, len(control), 2)
    for column, value in want.items():
        assert row[column] == pytest.approx(value), column

    health = {r["channel"]: r for r in view(empty_db, "delivery_health")}
    assert sum(r["delivered"] for r in health.values()) == len(delivered)
    assert sum(r["retried_attempts"] for r in health.values()) == 1
    assert sum(r["dead_letters"] for r in health.values()) == 1
    assert all(r["median_attempts_to_deliver"] == 1 for r in health.values() if r["delivered"])
    [dead] = view(empty_db, "dead_letters")
    assert (dead["idempotency_key"], dead["attempts"], dead["last_error"]) == (rejected, 1, "unknown device token")
    assert dead["channel"] == queued[0].channel
