"""The fault matrix (docs/fault-matrix.md): processes killed and the database restarted mid-run.

Each test repeats its fault ``FAULT_TRIALS`` times (``make fault-matrix``: 20) at a random
moment, lets the task's retry run, and checks that nothing was lost or sent twice: the result
equals an uninterrupted run's, and a repeated delivery carries the key the receiver drops it by.
The gateways' own faults (down, slow, 5xx, 429) are rows of the same table; their tests live
with the channels (``test_channels.py``) except "down, then back", here.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from devenv.localdb import EmbeddedPostgres
from jobs.core.db import apply_migrations, make_engine
from jobs.core.errors import explain_failure
from jobs.ingest.clean import clean_window
from jobs.notify.plan import plan_notifications
from jobs.notify.relay import relay_pending
from tests.support import ROOT, scratch_root
from tests.support.events import make_event, write_landing
from tests.support.faults import kill_when, trials, wait_for_other_sessions_to_end
from tests.support.notify_data import add_items, add_users, publish
from tests.support.outbox import message_row, seed_outbox, user_row
from tests.support.servers import SECRET, FakeGateway, MailHandler, free_port, smtp_server

pytestmark = pytest.mark.slow

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
PLAN_AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _rows(engine, sql: str) -> list:
    with engine.connect() as conn:
        return sorted(conn.execute(text(sql)).all(), key=repr)


# --- kill -9 during the lake write ------------------------------------------------------------


def _landing(settings) -> None:
    """One landing hour: 20,000 events over three days of event time (72 lake leaves), a few bad lines."""
    for folder in (settings.landing_dir / "events", settings.clean_dir):
        shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(3)
    start = HOUR - timedelta(hours=71)
    events = [
        make_event(
            event_id=f"e{n}",
            user_id=f"u{rng.randrange(500)}",
            item_id=f"i{rng.randrange(200)}",
            ts=(start + timedelta(seconds=rng.randrange(72 * 3600))).isoformat(),
        )
        for n in range(20_000)
    ]
    for part in range(4):
        lines = [*events[part::4], '{"event_id": "broken', make_event(event_id="e1")]  # a bad line, a duplicate
        write_landing(settings.landing_dir, HOUR.hour, f"part-{part}.jsonl", lines)


def _lake_and_ledger(spark, settings, engine) -> tuple:
    lake = spark.read.option("basePath", str(settings.clean_dir)).parquet(str(settings.clean_dir))
    leaves = sorted(str(path.parent.relative_to(settings.clean_dir)) for path in settings.clean_dir.rglob("*.parquet"))
    return (
        sorted(tuple(row) for row in lake.collect()),
        sorted(set(leaves)),
        _rows(engine, "SELECT * FROM push.ingest_runs"),
        _rows(engine, "SELECT window_start, source_file, line_no, reason, raw FROM push.quarantine"),
        _rows(engine, "SELECT * FROM push.quarantined_files"),
        _rows(engine, "SELECT * FROM push.daily_event_summary"),
    )


def test_kill_9_during_the_lake_write_then_the_retry_equals_an_uninterrupted_run(spark, settings, empty_db, engine):
    _landing(settings)
    clean_window(spark, settings, HOUR, HOUR + timedelta(hours=1))
    expected = _lake_and_ledger(spark, settings, engine)
    assert len(expected[0]) == 20_000
    assert len(expected[1]) == 72
    rng = random.Random(11)
    command = [sys.executable, "-m", "jobs.ingest.clean", "--start", HOUR.isoformat(), "--end", "2026-11-24T11:00Z"]

    def writing() -> bool:
        return any(settings.clean_dir.glob(".spark-staging-*"))

    during_write = 0
    for trial in range(trials(1)):
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The first trial kills as soon as the write starts, the others up to 0.4 s into it.
        killed = kill_when(child, writing, delay=0.0 if trial == 0 else rng.uniform(0, 0.4))
        during_write += killed and writing()
        wait_for_other_sessions_to_end(engine)
        # What Airflow's retry does: clean the window again.
        clean_window(spark, settings, HOUR, HOUR + timedelta(hours=1))
        assert _lake_and_ledger(spark, settings, engine) == expected, f"trial {trial}"
        assert not writing(), "a killed write's staging folder was left behind"
    assert during_write >= 1, "no kill landed inside the write"
    print(f"lake write: {trials(1)} kills, {during_write} inside the write (staging folder present)")


# --- kill -9 during the relay -----------------------------------------------------------------


def _seed_messages(engine, prefix: str, count: int) -> list[str]:
    keys = [f"{prefix}-{n:04d}" for n in range(count)]
    seed_outbox(
        engine,
        [user_row(f"{prefix}-u{n:04d}") for n in range(count)],
        [message_row(key, f"{prefix}-u{n:04d}") for n, key in enumerate(keys)],
    )
    return keys


def _assert_each_message_sent_once(engine, gateway: FakeGateway, keys: list[str], interruptions: int) -> None:
    """Every message sent; a key reached the gateway twice only for a message in flight at a fault."""
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM push.notification_ledger WHERE idempotency_key = ANY(:k) GROUP BY 1"
                ),
                {"k": keys},
            ).all()
        )
        attempts = conn.execute(
            text("SELECT count(*) FROM push.delivery_attempts WHERE idempotency_key = ANY(:k) AND outcome = 'sent'"),
            {"k": keys},
        ).scalar_one()
    assert statuses == {"sent": len(keys)}
    assert attempts == len(keys)
    assert set(gateway.delivered) >= set(keys)
    repeated = {key: n for key, n in gateway.keys().items() if key in set(keys) and n > 1}
    assert sum(n - 1 for n in repeated.values()) <= interruptions, repeated
    assert all(request.verified for request in gateway.requests)


@pytest.fixture
def slow_gateway():
    """A gateway that takes 5 ms a request, so a relay pass lasts long enough to be interrupted."""
    server = FakeGateway(delay_seconds=0.005).start()
    yield server
    server.stop()


def _relay_settings(settings, gateway: FakeGateway, tmp_path):
    return replace(
        settings,
        smtp_url="",
        push_gateway_url=gateway.url + "/push",
        gateway_secret=SECRET,
        gateway_timeout_seconds=5.0,
        channel_rate_limits={},
        outbox_dir=tmp_path / "outbox",
    )


def test_kill_9_during_the_relay_then_the_retry_sends_each_message_once(empty_db, settings, slow_gateway, tmp_path):
    relay_settings = _relay_settings(settings, slow_gateway, tmp_path)
    env = {
        **os.environ,
        "PUSH_SMTP_URL": "",
        "PUSH_PUSH_GATEWAY_URL": relay_settings.push_gateway_url,
        "PUSH_GATEWAY_SECRET": SECRET,
        "PUSH_GATEWAY_TIMEOUT_SECONDS": "5",
        "PUSH_CHANNEL_RATE_LIMITS": "",
        "PUSH_OUTBOX_DIR": str(relay_settings.outbox_dir),
    }
    rng = random.Random(5)
    killed = 0
    for trial in range(trials(5)):
        keys = _seed_messages(empty_db, f"k{trial}", 150)
        received = len(slow_gateway.requests)
        cut = rng.randrange(1, 140)  # kill after this many of the trial's requests reached the gateway
        child = subprocess.Popen(
            [sys.executable, "-m", "jobs.notify.relay"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        killed += kill_when(child, lambda received=received, cut=cut: len(slow_gateway.requests) - received >= cut)
        wait_for_other_sessions_to_end(empty_db)
        relay_pending(relay_settings)  # the task's retry
        _assert_each_message_sent_once(empty_db, slow_gateway, keys, interruptions=1)
    assert killed == trials(5)
    print(f"relay: {killed} kills, {slow_gateway.duplicates} repeated deliveries dropped by their key")


# --- PostgreSQL restarted under a plan and a relay ----------------------------------------------


@pytest.fixture
def own_cluster(monkeypatch):
    """A cluster of the test's own, set as the pipeline database: restarting the session's would
    cut the connections other tests' pools (Airflow's among them) still hold."""
    cluster = EmbeddedPostgres(scratch_root() / f"pg-restart-{uuid.uuid4().hex[:8]}")
    url = cluster.start()
    engine = make_engine(url)
    apply_migrations(engine)
    monkeypatch.setenv("PUSH_DATABASE_URL", url)
    yield cluster, engine
    engine.dispose()
    cluster.destroy()


def _restart_database_after(cluster: EmbeddedPostgres, delay: float, done: threading.Event) -> threading.Thread:
    def restart() -> None:
        if not done.wait(delay):
            cluster.restart("immediate")

    thread = threading.Thread(target=restart)
    thread.start()
    return thread


def _plan_outcome(engine) -> tuple:
    return (
        _rows(
            engine,
            "SELECT idempotency_key, run_key, user_id, channel, source, item_id, scheduled_at, payload::text"
            " FROM push.notification_ledger",
        ),
        _rows(
            engine,
            "SELECT run_key, user_id, candidate_key, channel, decision, idempotency_key FROM push.notification_decisions",
        ),
    )


def _forget_plans(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE push.notification_ledger, push.notification_decisions, push.notification_runs,"
                " push.notify_user_state CASCADE"
            )
        )


def test_a_database_restart_during_a_plan_then_the_retry_equals_an_uninterrupted_plan(own_cluster, policy_settings):
    cluster, engine = own_cluster
    users = [f"p{n:04d}" for n in range(2000)]
    add_users(engine, users)
    add_items(engine)
    publish(engine, users)
    started = time.monotonic()
    plan_notifications(policy_settings, PLAN_AT, batch_size=50, workers=2)
    duration = time.monotonic() - started
    expected = _plan_outcome(engine)
    assert len(expected[0]) == 2000
    rng = random.Random(13)
    failures = []
    for trial in range(trials(3)):
        _forget_plans(engine)
        done = threading.Event()
        restarter = _restart_database_after(cluster, rng.uniform(0.1, 0.9) * duration, done)
        try:
            plan_notifications(policy_settings, PLAN_AT, batch_size=50, workers=2)
        except Exception as error:  # what the task log ends with
            failures.append(explain_failure(error))
        finally:
            done.set()
            restarter.join()
        # The task's retry.
        plan_notifications(policy_settings, PLAN_AT, batch_size=50, workers=2)
        assert _plan_outcome(engine) == expected, f"trial {trial}"
    assert failures, "the plan outran every restart"
    assert all("database" in line and "re-run" in line for line in failures), failures
    print(f"plan: {trials(3)} restarts, {len(failures)} plans cut; the task log says: {failures[0]}")


def test_a_database_restart_during_a_relay_then_the_retry_sends_each_message_once(
    own_cluster, settings, slow_gateway, tmp_path
):
    cluster, engine = own_cluster
    relay_settings = _relay_settings(settings, slow_gateway, tmp_path)
    rng = random.Random(17)
    failures = []
    for trial in range(trials(3)):
        keys = _seed_messages(engine, f"r{trial}", 150)
        done = threading.Event()
        # 150 requests of at least 5 ms: the pass lasts about a second.
        restarter = _restart_database_after(cluster, rng.uniform(0.1, 0.6), done)
        try:
            relay_pending(relay_settings)
        except Exception as error:
            failures.append(explain_failure(error))
        finally:
            done.set()
            restarter.join()
        relay_pending(relay_settings)
        _assert_each_message_sent_once(engine, slow_gateway, keys, interruptions=1)
    assert failures, "the relay outran every restart"
    print(
        f"relay: {trials(3)} restarts, {len(failures)} passes cut, {slow_gateway.duplicates} repeated deliveries"
        f" dropped by their key; the task log says: {failures[0]}"
    )


# --- providers down, then back ----------------------------------------------------------------


def test_providers_down_then_back_deliver_on_a_later_pass_with_nothing_lost(empty_db, settings, tmp_path):
    gateway_port, smtp_port = free_port(), free_port()
    relay_settings = replace(
        settings,
        smtp_url=f"smtp://127.0.0.1:{smtp_port}?from=noreply@shop.example",
        push_gateway_url=f"http://127.0.0.1:{gateway_port}/push",
        gateway_secret=SECRET,
        gateway_timeout_seconds=1.0,
        retry_base_seconds=0.05,
        retry_max_seconds=0.1,
        relay_max_attempts=5,
        channel_rate_limits={},
        outbox_dir=tmp_path / "outbox",
    )
    seed_outbox(
        empty_db,
        [user_row("u1"), user_row("u2")],
        [message_row("k-push", "u1"), message_row("k-mail", "u2", "email")],
    )
    # Nothing listens: both are retried later, neither is lost.
    assert relay_pending(relay_settings) == {"retry": 2}
    with empty_db.connect() as conn:
        errors = dict(conn.execute(text("SELECT channel, last_error FROM push.notification_ledger")).all())
    assert "cannot connect" in errors["push"]
    assert "ConnectionRefusedError" in errors["email"]
    gateway, mail = FakeGateway(port=gateway_port).start(), MailHandler()
    try:
        with smtp_server(mail, port=smtp_port):
            assert relay_pending(relay_settings, max_wait_seconds=2.0) == {"sent": 2}
    finally:
        gateway.stop()
    assert gateway.keys() == {"k-push": 1}
    assert len(mail.received) == 1
