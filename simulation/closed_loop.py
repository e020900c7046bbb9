"""The closed loop, measured: the real DAGs, day after day, against shoppers who answer.

``make simulate DAYS=14`` (``python -m simulation.closed_loop``) runs on its own embedded stack
(``.local/simulate``; ``PUSH_LOCAL_DIR`` moves it):

1. a world of shoppers with a planted truth (``simulation/world.py``) writes ``--warmup-days``
   of their own behaviour; the hourly, daily and notifications DAGs run once over them;
2. then every simulated day: the world writes the day's landing files (the users' own sessions
   and their answers to the messages delivered that day) and the users snapshot (opt-outs),
   Airflow runs ``hourly_events`` over the whole day (``hours=24``: triggers, feedback, fatigue,
   send-time estimates), ``daily_recommendations`` (profiles, training, publish) and
   ``notifications`` (the next 24 hours, delivered); the world answers what was delivered, and
   the oracle's messages to its own users.

Users are split by keyed hashes: the product's control group (``--holdout`` percent: no
message), its policy arms (``--arms``, ``PUSH_POLICY_ARMS``: random send hour, fixed cap,
popularity content, no uplift targeting; the rest get the full policy) and the world's oracle users. Every figure is
computed from what the world saw happen (its truth), per policy over the simulated days:
messages, CTR (clicks per message), CVR (purchases after a click per message), revenue per
user, opt-out rate, and the lift: the share of users who bought at least once, minus the
control group's, with a 95 % interval. The comparison is printed, written as
``<reports>/simulation.json`` and ``.md``, appended to the benchmark results, and its last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from simulation.synthetic import GeneratorConfig
from simulation.world import ResponseConfig, World

DEFAULT_ARMS = "random_hour:15,fixed_cap:15,popularity:15,no_uplift:20"
NOTIFY_CONF = {"horizon_hours": 24, "relay_ahead_hours": 24}
POLICY_ORDER = ("full", "no_uplift", "random_hour", "fixed_cap", "popularity", "none")


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 2000
    items: int = 400
    days: int = 14
    warmup_days: int = 7
    seed: int = 42
    # The warm-up (7 days before) starts on the DAGs' start date.
    first_day: date = date(2026, 11, 8)
    holdout_percent: float = 20.0
    arms: str = DEFAULT_ARMS
    # Share of (user, local day) pairs sent at a random hour, for the off-policy check.
    explore_percent: float = 20.0
    # How campaign variants share the users: fixed weights, or Thompson sampling.
    variant_allocation: str = "fixed"


def lift(treated: list[bool], control: list[bool]) -> dict:
    """Difference in conversion (share of users who bought), treated minus control, with a 95 %
    normal-approximation interval; None where a group is empty."""
    if not treated or not control:
        return {"estimate": None, "ci_low": None, "ci_high": None}
    p1, p0 = sum(treated) / len(treated), sum(control) / len(control)
    se = math.sqrt(p1 * (1 - p1) / len(treated) + p0 * (1 - p0) / len(control))
    estimate = p1 - p0
    return {
        "estimate": round(estimate, 4),
        "ci_low": round(estimate - 1.96 * se, 4),
        "ci_high": round(estimate + 1.96 * se, 4),
    }


def policy_figures(world: World, members: list[str], control: list[str]) -> dict:
    """The comparison's figures for one group of users, from the world's tallies."""
    tallies = [world.tally[u] for u in members]
    messages = sum(t.messages for t in tallies)
    clicks = sum(t.clicks for t in tallies)
    nudged = sum(t.nudged_purchases for t in tallies)
    return {
        "users": len(members),
        "messages": messages,
        "ctr": round(clicks / messages, 4) if messages else 0.0,
        "cvr": round(nudged / messages, 4) if messages else 0.0,
        "conversion": round(sum(t.purchases > 0 for t in tallies) / len(tallies), 4) if tallies else 0.0,
        "revenue_per_user": round(sum(t.revenue for t in tallies) / len(tallies), 2) if tallies else 0.0,
        "opt_out_rate": round(sum(t.opted_out for t in tallies) / len(tallies), 4) if tallies else 0.0,
        "lift": lift([t.purchases > 0 for t in tallies], [world.tally[u].purchases > 0 for u in control]),
    }


def compare(world: World, groups: dict[str, list[str]]) -> dict:
    """Figures per policy and for the oracle; the share of the oracle's lift each policy captures."""
    control = groups["none"]
    policies = {name: policy_figures(world, groups[name], control) for name in POLICY_ORDER if name in groups}
    oracle = policy_figures(world, groups["oracle"], control)
    ceiling = oracle["lift"]["estimate"]
    for figures in policies.values():
        own = figures["lift"]["estimate"]
        figures["share_of_oracle_lift"] = round(own / ceiling, 3) if own is not None and ceiling else None
    return {"policies": policies, "oracle": oracle}


def render_table(result: dict) -> str:
    """The comparison as a Markdown table (printed and written beside the JSON)."""
    header = (
        "| policy | users | messages | CTR | CVR | converted | revenue/user | opt-outs | lift [95 % CI] | of oracle |"
    )
    lines = [header, "|" + "---|" * 10]
    rows = [*result["policies"].items(), ("oracle", result["oracle"])]
    for name, f in rows:
        lift_text = (
            "-"
            if f["lift"]["estimate"] is None
            else f"{f['lift']['estimate']:+.3f} [{f['lift']['ci_low']:+.3f}, {f['lift']['ci_high']:+.3f}]"
        )
        share = f.get("share_of_oracle_lift")
        lines.append(
            f"| {name} | {f['users']} | {f['messages']} | {f['ctr']:.3f} | {f['cvr']:.3f} | {f['conversion']:.3f}"
            f" | {f['revenue_per_user']:.2f} | {f['opt_out_rate']:.3f} | {lift_text} |"
            f" {'-' if share is None else f'{share:.0%}'} |"
        )
    return "\n".join(lines)


def delivered_messages(engine) -> list[dict]:
    """Every message the relay delivered (what the world answers), in delivery-time order."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT idempotency_key, user_id, item_id, scheduled_at, payload -> 'facts' ->> 'template' AS template"
                " FROM push.notification_ledger WHERE status = 'sent' ORDER BY scheduled_at, idempotency_key"
            )
        ).all()
    return [row._asdict() for row in rows]


class Stack:
    """The embedded database, Airflow in-process (``dag.test``) and the world's landing zone."""

    def __init__(self, config: SimulationConfig):
        os.environ.setdefault("PUSH_LOCAL_DIR", str(Path(__file__).resolve().parents[1] / ".local" / "simulate"))
        os.environ["PUSH_HOLDOUT_PERCENT"] = str(config.holdout_percent)
        os.environ["PUSH_POLICY_ARMS"] = config.arms
        os.environ["PUSH_EXPLORE_PERCENT"] = str(config.explore_percent)
        os.environ["PUSH_VARIANT_ALLOCATION"] = config.variant_allocation
        from devenv.airflow_env import airflow_environment, migrate_metadata
        from devenv.demo import ensure_database
        from jobs.core.config import Settings
        from jobs.core.db import make_engine, truncate_pipeline_tables

        ensure_database()
        self.settings = Settings.from_env()
        self.engine = make_engine(self.settings.database_url)
        truncate_pipeline_tables(self.engine)
        for folder in (self.settings.landing_dir, self.settings.lake_dir, self.settings.outbox_dir):
            shutil.rmtree(folder, ignore_errors=True)
        env = airflow_environment(self.settings)
        os.environ.update(env)
        migrate_metadata(env)
        from airflow.dag_processing.dagbag import DagBag

        root = Path(__file__).resolve().parents[1] / "dags"
        self.dags = {
            dag_id: DagBag(dag_folder=str(root / f"{dag_id}.py")).dags[dag_id]
            for dag_id in ("hourly_events", "daily_recommendations", "notifications")
        }
        self.answered: set[str] = set()
        self.timings: dict[str, float] = {}

    def run(self, dag_id: str, logical: datetime, conf: dict) -> None:
        start_date = self.dags[dag_id].start_date
        if start_date is not None and logical < start_date:
            # dag.test() would create a run without tasks and call it a success.
            raise SystemExit(
                f"{dag_id} cannot run for {logical:%Y-%m-%d %H:%M}: before its start date {start_date:%Y-%m-%d};"
                " start the simulation (and its warm-up) later"
            )
        started = time.monotonic()
        state = str(self.dags[dag_id].test(logical_date=logical, run_conf=conf).state)
        self.timings[dag_id] = self.timings.get(dag_id, 0.0) + time.monotonic() - started
        if state != "success":
            raise SystemExit(f"{dag_id} for {logical:%Y-%m-%d %H:%M} ended {state}; see its task logs")

    def delivered(self) -> list[dict]:
        """Messages the relay delivered that the world has not answered yet."""
        fresh = [m for m in delivered_messages(self.engine) if m["idempotency_key"] not in self.answered]
        self.answered.update(m["idempotency_key"] for m in fresh)
        return fresh

    def product_view(self) -> dict:
        """The product's own measurement of its arms (the evaluation report's query): what an
        operator sees without the planted truth."""
        from sqlalchemy import text

        from jobs.core.db import load_query

        with self.engine.connect() as conn:
            rows = conn.execute(text(load_query("report/report_policy_arms")), {"until": None}).mappings().all()
        return {
            row["policy_arm"]: {
                "delivered": row["delivered"],
                "ctr": round(row["clicks"] / row["delivered"], 4) if row["delivered"] else 0.0,
                "cvr": round(row["conversions"] / row["delivered"], 4) if row["delivered"] else 0.0,
                "lift": {
                    key: None if row[column] is None else round(row[column], 4)
                    for key, column in (
                        ("estimate", "absolute_lift"),
                        ("ci_low", "absolute_lift_ci_low"),
                        ("ci_high", "absolute_lift_ci_high"),
                    )
                },
            }
            for row in rows
        }

    def groups(self, world: World) -> dict[str, list[str]]:
        """Users by policy: control (held out), each arm's treated users, the world's oracle users."""
        from sqlalchemy import text

        from jobs.notify.policy import policy_params

        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id, push.holdout_bucket(user_id, :holdout_salt) < :holdout_basis_points AS control,"
                    " push.policy_arm(user_id, :arms_salt, CAST(:arm_names AS text[]),"
                    " CAST(:arm_bounds AS integer[])) AS arm FROM push.users"
                ),
                policy_params(self.settings),
            ).all()
        groups: dict[str, list[str]] = {"oracle": [u for u, s in world.shoppers.items() if s.oracle]}
        for row in rows:
            groups.setdefault("none" if row.control else row.arm, []).append(row.user_id)
        return groups


def simulate(config: SimulationConfig) -> dict:
    started = time.monotonic()
    stack = Stack(config)
    landing = stack.settings.landing_dir
    first = config.first_day
    world = World(
        GeneratorConfig(
            users=config.users,
            items=config.items,
            seed=config.seed,
            end_date=first - timedelta(days=1),
            bot_share=0.0,
        ),
        ResponseConfig(),
    )
    warmup_start = first - timedelta(days=config.warmup_days)
    last = first + timedelta(days=config.days - 1)
    for n in range(config.warmup_days):
        world.write_day(landing, warmup_start + timedelta(days=n))
    world.write_reference(landing, warmup_start, last)
    at = datetime.combine(first, datetime.min.time(), UTC)
    print(f"warm-up: {config.warmup_days} days of own behaviour for {config.users} users", flush=True)
    # The hourly DAG has seen every warm-up day, as it would have in production: the purchases
    # (feedback) are what the uplift cells are made of.
    for n in range(config.warmup_days):
        stack.run("hourly_events", at - timedelta(days=config.warmup_days - 1 - n), {"hours": 24})
    stack.run("daily_recommendations", at, {"clean_days": config.warmup_days})
    world.reset_tallies()
    stack.run("notifications", at, NOTIFY_CONF)
    world.answer(stack.delivered() + world.oracle_messages(first))
    for n in range(config.days):
        day = first + timedelta(days=n)
        day_started = time.monotonic()
        lines = world.write_day(landing, day)
        world.write_reference(landing, warmup_start, last)
        at = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        stack.run("hourly_events", at, {"hours": 24})
        stack.run("daily_recommendations", at, {"clean_days": 1})
        sent = 0
        if day < last:
            stack.run("notifications", at, NOTIFY_CONF)
            delivered = stack.delivered()
            sent = len(delivered)
            world.answer(delivered + world.oracle_messages(day + timedelta(days=1)))
        print(
            f"day {n + 1}/{config.days} {day}: {lines} lines, {sent} messages delivered"
            f" ({time.monotonic() - day_started:.0f} s)",
            flush=True,
        )
    groups = stack.groups(world)
    result = compare(world, groups)
    return {
        "uplift": uplift_check(stack.engine, world, groups),
        "ab_tests": ab_tests(stack.engine, world.response),
        "off_policy": off_policy_check(stack.engine, datetime.combine(last, datetime.min.time(), UTC)),
        "product_view": stack.product_view(),
        "days": config.days,
        "seed": config.seed,
        "users": config.users,
        **result,
        "seconds": round(time.monotonic() - started, 1),
        "dag_seconds": {k: round(v, 1) for k, v in stack.timings.items()},
        "reports": str(stack.settings.reports_dir),
    }


def uplift_check(engine, world: World, groups: dict[str, list[str]]) -> dict:
    """The uplift gate against the planted types: per type, the share of the full policy's gated
    user-days it skipped, and per type in the full and no_uplift arms the messages and the
    purchases they caused; the last estimate per cell."""
    from sqlalchemy import text

    with engine.connect() as conn:
        days = conn.execute(
            text(
                "SELECT user_id, bool_or(decision = 'skipped_uplift') AS skipped FROM push.notification_decisions"
                " WHERE policy_arm = 'full' AND uplift_probability IS NOT NULL"
                " GROUP BY user_id, date_trunc('day', decided_at, 'UTC')"
            )
        ).all()
        last = (
            conn.execute(
                text(
                    "SELECT as_of, cell, treatment_units, control_units, effect, effect_se, send_probability"
                    " FROM push.uplift_estimates WHERE as_of = (SELECT max(as_of) FROM push.uplift_estimates)"
                    " ORDER BY cell"
                )
            )
            .mappings()
            .all()
        )
    by_type: dict[str, dict] = {}
    for uplift_type in sorted({s.uplift for s in world.shoppers.values()}):
        own = [row.skipped for row in days if world.shoppers[row.user_id].uplift == uplift_type]
        figures: dict = {"gated_days": len(own), "skipped_share": round(sum(own) / len(own), 3) if own else None}
        for arm in ("full", "no_uplift"):
            tallies = [world.tally[u] for u in groups.get(arm, []) if world.shoppers[u].uplift == uplift_type]
            messages = sum(t.messages for t in tallies)
            figures[arm] = {
                "users": len(tallies),
                "messages_per_user": round(messages / len(tallies), 2) if tallies else None,
                "caused_purchases_per_message": round(sum(t.nudged_purchases for t in tallies) / messages, 4)
                if messages
                else None,
            }
        by_type[uplift_type] = figures
    return {
        "by_type": by_type,
        "last_estimate": [{**row, "as_of": str(row["as_of"])} for row in last],
    }


def render_uplift(check: dict) -> str:
    lines = [
        "Uplift gate against the planted types (full policy's gated user-days; messages per user and purchases"
        " caused per message, full vs no_uplift arm):",
    ]
    for uplift_type, f in check["by_type"].items():
        full, plain = f["full"], f["no_uplift"]
        skipped = "-" if f["skipped_share"] is None else f"{f['skipped_share']:.0%}"
        lines.append(
            f"  {uplift_type}: {skipped} of {f['gated_days']} days skipped; messages/user {full['messages_per_user']}"
            f" vs {plain['messages_per_user']}; caused purchases/message {full['caused_purchases_per_message']}"
            f" vs {plain['caused_purchases_per_message']}"
        )
    for row in check["last_estimate"]:
        effect = "-" if row["effect"] is None else f"{row['effect']:+.4f} +/- {row['effect_se']:.4f}"
        lines.append(
            f"  estimate of {row['as_of']}, {row['cell']}: effect {effect}"
            f" ({row['treatment_units']} messaged / {row['control_units']} held-out days) -> send share"
            f" {row['send_probability']:.2f}"
        )
    return "\n".join(lines)


def ab_tests(engine, response: ResponseConfig) -> dict:
    """The product's A/B/n test of every campaign's wording (jobs.notify.experiments) beside the
    planted truth: the click factor of each template in the world."""
    from sqlalchemy import text

    from jobs.notify.experiments import load_variant_frames, variant_tests

    results = variant_tests(*load_variant_frames(engine))
    factors = dict(response.wording_click)
    with engine.connect() as conn:
        templates = {
            (c, v): t
            for c, v, t in conn.execute(text("SELECT campaign_id, variant, template FROM push.campaign_variants"))
        }
    # The planted best variant of each campaign: the one whose wording the world clicks most.
    on_best = sum(
        r.delivered
        for r in results
        if factors.get(templates.get((r.campaign_id, r.variant)) or "", 1.0)
        == max(factors.get(t or "", 1.0) for (c, _), t in templates.items() if c == r.campaign_id)
    )
    delivered = sum(r.delivered for r in results)
    return {
        "planted_click_factor": factors,
        "allocation": os.environ.get("PUSH_VARIANT_ALLOCATION", "fixed"),
        "share_on_planted_best": round(on_best / delivered, 4) if delivered else None,
        "variants": [asdict(r) for r in results],
    }


def off_policy_check(engine, until: datetime) -> dict:
    """The random_hour arm's click rate per message, estimated off-policy from the full arm's
    logs (its explored days), beside what the arm actually got: the off-policy estimate is
    right when its interval holds the actual rate. Likewise the no_uplift arm's conversion per
    user-day (sending on every day), estimated from the full arm's gated days, over the runs
    before ``until`` (whose outcomes are complete)."""
    from jobs.notify.offpolicy import estimate, estimate_send_rule, load_gate_log, load_log

    estimated = estimate(load_log(engine, arms=["full"]), "uniform")
    actual_log = load_log(engine, arms=["random_hour"])
    messages = len(actual_log)
    rate = float(actual_log["clicked"].mean()) if messages else None
    return {
        "target": "uniform send hour (the random_hour arm's rule)",
        "estimate_from_full_arm": asdict(estimated),
        "actual_random_hour_arm": {
            "messages": messages,
            "ctr": None if rate is None else round(rate, 6),
            **_interval(rate, messages),
        },
        "actual_within_snips_interval": _within(estimated, rate),
        "send_always": send_always_check(
            estimate_send_rule(load_gate_log(engine, ["full"], until), "send_always"),
            estimate_send_rule(load_gate_log(engine, ["no_uplift"], until), "gate"),
        ),
    }


def send_always_check(estimated, actual) -> dict:
    """The estimate of sending on every day beside the arm that does (its mean per user-day with
    a 95 % normal interval)."""
    rate = actual.snips
    return {
        "target": "send on every day (the no_uplift arm's rule), conversion per user-day",
        "estimate_from_full_arm": asdict(estimated),
        "actual_no_uplift_arm": {"user_days": actual.messages, "conversion": rate, **_interval(rate, actual.messages)},
        "actual_within_snips_interval": _within(estimated, rate),
    }


def _interval(rate: float | None, n: int) -> dict:
    """A rate's 95 % normal-approximation interval (None without data)."""
    if rate is None or n == 0:
        return {"ci_low": None, "ci_high": None}
    half = 1.96 * math.sqrt(rate * (1 - rate) / n)
    return {"ci_low": round(rate - half, 6), "ci_high": round(rate + half, 6)}


def _within(estimated, rate: float | None) -> bool | None:
    """Whether the rate an arm actually got lies in the off-policy estimate's SNIPS interval."""
    if rate is None or estimated.snips is None:
        return None
    return estimated.snips_low <= rate <= estimated.snips_high


def render_off_policy(check: dict) -> str:
    e, a = check["estimate_from_full_arm"], check["actual_random_hour_arm"]
    if e["snips"] is None or a["ctr"] is None:
        return "Off-policy check: not enough logged messages."
    return (
        f"Off-policy check, CTR of a {check['target']}:\n"
        f"  estimated from the full arm's logs ({e['messages']} messages, effective sample {e['effective_sample']}):"
        f" SNIPS {e['snips']:.3f} [{e['snips_low']:.3f}, {e['snips_high']:.3f}],"
        f" IPS {e['ips']:.3f} [{e['ips_low']:.3f}, {e['ips_high']:.3f}]\n"
        f"  actually run (random_hour arm, {a['messages']} messages): {a['ctr']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]"
        f" -> {'within' if check['actual_within_snips_interval'] else 'outside'} the SNIPS interval"
        + render_send_always(check["send_always"])
    )


def render_send_always(check: dict) -> str:
    e, a = check["estimate_from_full_arm"], check["actual_no_uplift_arm"]
    if e["snips"] is None or a["conversion"] is None:
        return "\nOff-policy check of sending every day: not enough gated user-days."
    return (
        f"\nOff-policy check, {check['target']}:\n"
        f"  estimated from the full arm's user-days ({e['messages']}, effective sample {e['effective_sample']}):"
        f" SNIPS {e['snips']:.4f} [{e['snips_low']:.4f}, {e['snips_high']:.4f}],"
        f" IPS {e['ips']:.4f} [{e['ips_low']:.4f}, {e['ips_high']:.4f}]\n"
        f"  actually run (no_uplift arm, {a['user_days']} user-days): {a['conversion']:.4f}"
        f" [{a['ci_low']:.4f}, {a['ci_high']:.4f}]"
        f" -> {'within' if check['actual_within_snips_interval'] else 'outside'} the SNIPS interval"
    )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_ab_tests(tests: dict) -> str:
    lines = [
        f"A/B tests of the campaigns' wording (planted click factor {tests['planted_click_factor']};"
        f" {tests['allocation']} allocation, {_share(tests['share_on_planted_best'])} of the messages on the planted"
        " best variant):",
        "| campaign / variant | delivered | CTR | CVR | CVR - reference [always-valid 95 % CI] | p | p of CTR | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in tests["variants"]:
        interval = (
            "-"
            if r["cvr_difference"] is None
            else f"{r['cvr_difference']:+.3f} [{r['cvr_difference_low']:+.3f}, {r['cvr_difference_high']:+.3f}]"
        )
        lines.append(
            f"| {r['campaign_id']} / {r['variant']} | {r['delivered']} | {r['ctr'] or 0:.3f} | {r['cvr'] or 0:.3f}"
            f" | {interval} | {_p(r['p_value'])} | {_p(r.get('ctr_p_value'))} | {r['verdict']} |"
        )
    return "\n".join(lines)


def write_outputs(result: dict, reports_dir: Path) -> None:
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "simulation.json").write_text(json.dumps(result, indent=1))
    (reports_dir / "simulation.md").write_text(
        f"# Closed loop: {result['days']} simulated days, seed {result['seed']}, {result['users']} users\n\n"
        + render_table(result)
        + "\n\n"
        + render_uplift(result["uplift"])
        + "\n\n"
        + render_ab_tests(result["ab_tests"])
        + "\n\n"
        + render_off_policy(result["off_policy"])
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SimulationConfig()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--warmup-days", type=int, default=defaults.warmup_days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--holdout", type=float, default=defaults.holdout_percent, help="control group, percent")
    parser.add_argument("--arms", default=defaults.arms, help="policy arms, percent each (PUSH_POLICY_ARMS)")
    parser.add_argument(
        "--explore", type=float, default=defaults.explore_percent, help="explored (user, day) pairs, percent"
    )
    parser.add_argument(
        "--variant-allocation",
        choices=("fixed", "thompson"),
        default=defaults.variant_allocation,
        help="how campaign variants share the users (PUSH_VARIANT_ALLOCATION)",
    )
    args = parser.parse_args(argv)
    if args.days < 2 or args.warmup_days < 1:
        parser.error("--days must be at least 2 and --warmup-days at least 1")
    config = SimulationConfig(
        users=args.users,
        items=args.items,
        days=args.days,
        warmup_days=args.warmup_days,
        seed=args.seed,
        holdout_percent=args.holdout,
        arms=args.arms,
        explore_percent=args.explore,
        variant_allocation=args.variant_allocation,
    )
    result = simulate(config)
    write_outputs(result, Path(result["reports"]))
    print()
    print(render_table(result))
    print()
    print(render_uplift(result["uplift"]))
    print()
    print(render_ab_tests(result["ab_tests"]))
    print()
    print(render_off_policy(result["off_policy"]))
    print("\nThe product's own view (evaluation report; lift per planning run and user, attributed conversions):")
    for arm, view in result["product_view"].items():
        print(f"  {arm}: {view}")
    print(
        f"\n{config.days} days x {config.users} users in {result['seconds']:.0f} s; DAG time: {result['dag_seconds']}"
    )
    local = os.environ["PUSH_LOCAL_DIR"]
    print(f"Its database is still running: PUSH_LOCAL_DIR={local} make psql (or make down to stop it).")
    from benchmarks.figures import record

    # The last line: one JSON object, also appended to the benchmark results (Spark's gateway
    # would otherwise log its goodbye after it).
    logging.getLogger("py4j").setLevel(logging.WARNING)
    record(
        "simulate",
        {
            k: result[k]
            for k in ("days", "seed", "users", "seconds", "policies", "oracle", "uplift", "ab_tests", "off_policy")
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
