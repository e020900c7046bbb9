"""The streaming job on real Spark and PostgreSQL: files dropped over time into the watched folder.

In-process tests drive the query with ``availableNow`` steps (each step processes the files
present, and the following step's batches see the watermark the previous one reached), so the
scripted stream is deterministic. The crash test runs the real entry point in a subprocess.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from jobs.ingest.reference import load_reference
from jobs.notify.plan import plan_notifications
from jobs.privacy.erase import erase_user, find_mentions
from jobs.stream.options import StreamOptions, live_dir
from simulation.live_model import publish_model
from tests.support import ROOT
from tests.support.events import make_event

pytestmark = pytest.mark.slow

T = datetime(2026, 11, 24, 10, tzinfo=UTC)
USERS_HEADER = "user_id,email,phone,push_token,timezone,locale,signup_date,consent_email,consent_sms,consent_push,consent_webhook\n"
OPTIONS = StreamOptions(trigger_seconds=0.5, watermark_seconds=600, max_files_per_trigger=50, state_partitions=1)


def _iso(minutes: float) -> str:
    return (T + timedelta(minutes=minutes)).isoformat()


NOT_UTF8 = b'{"event_id": "x-bytes", "user_id": "caf\xe9"}'


def _drop(settings, name: str, lines: list, landed_at: datetime | None = None) -> Path:
    """Write a file into the live folder atomically (hidden name, then rename), as a producer would."""
    folder = live_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    encoded = [
        line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()
        for line in lines
    ]
    hidden = folder / f".{name}"
    hidden.write_bytes(b"\n".join(encoded) + b"\n")
    if landed_at is not None:
        os.utime(hidden, (landed_at.timestamp(), landed_at.timestamp()))
    target = folder / name
    hidden.rename(target)
    return target


def _drop_bytes(settings, name: str, content: bytes) -> Path:
    """Write raw bytes into the live folder atomically, as :func:`_drop` does."""
    hidden = live_dir(settings) / f".{name}"
    hidden.write_bytes(content)
    return hidden.rename(live_dir(settings) / name)


def _holdout_user(engine, salt: str, prefix: str = "h") -> str:
    """A user id in the control group (hash bucket below the 5% holdout)."""
    with engine.connect() as conn:
        for n in range(1000):
            user = f"{prefix}{n}"
            if conn.execute(text("SELECT push.holdout_bucket(:u, :s)"), {"u": user, "s": salt}).scalar_one() < 500:
                return user
    raise AssertionError("no holdout user found")


@pytest.fixture
def stream_env(settings, empty_db, tmp_path):
    """Empty landing folder and database, a catalogue and users covering each policy outcome."""
    shutil.rmtree(settings.landing_dir / "events", ignore_errors=True)
    reference = settings.landing_dir / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    holdout = _holdout_user(empty_db, settings.holdout_salt)
    users = {
        "abandoner": "UTC,en,2026-01-01,true,false,true,false",
        "buyer": "UTC,en,2026-01-01,true,false,true,false",
        "capped": "UTC,en,2026-01-01,true,false,true,false",
        "optout": "UTC,en,2026-01-01,false,false,false,false",
        "night": "America/Los_Angeles,en,2026-01-01,true,false,true,false",
        holdout: "UTC,en,2026-01-01,true,false,true,false",
        "browser": "UTC,en,2026-01-01,true,false,true,false",
        "gone": "UTC,en,2026-01-01,true,false,true,false",
    }
    (reference / "users.csv").write_text(
        USERS_HEADER + "".join(f"{u},{u}@example.com,,tok-{u},{rest}\n" for u, rest in users.items())
    )
    (reference / "items.csv").write_text(
        "item_id,title,category,brand,price,in_stock\n"
        + "".join(f"i{n},Item {n},{'shoes' if n < 5 else 'books'},b,{10 + n},true\n" for n in range(10))
    )
    (reference / "campaigns.csv").write_text(
        "campaign_id,name,target_category,discount_text,valid_from,valid_to,priority,channels,transactional\n"
    )
    load_reference(settings, T - timedelta(days=1))
    # "capped" already got a message 20 minutes before the carts fire.
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source,"
                " scheduled_at, payload, status) VALUES ('earlier', 'notify-earlier', 'capped', 'push',"
                " 'recommendation', :at, '{}'::jsonb, 'sent')"
            ),
            {"at": T + timedelta(minutes=10)},
        )
    return {"holdout": holdout, "checkpoint": tmp_path / "checkpoint"}


def _run_once(spark, settings, checkpoint, options=OPTIONS):
    from jobs.stream.job import start_stream

    query = start_stream(spark, settings, options, checkpoint, once=True)
    query.awaitTermination(120)
    assert query.exception() is None, query.exception()


def _rows(engine, sql: str, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


def test_scripted_stream_fires_cancels_and_decides_like_the_batch(spark, settings, stream_env, engine):
    checkpoint = stream_env["checkpoint"]
    holdout = stream_env["holdout"]
    carts = [
        make_event(event_id=f"c-{user}", user_id=user, event_type="add_to_cart", item_id="i1", ts=_iso(0))
        for user in ("abandoner", "buyer", "capped", "optout", "night", holdout, "gone")
    ]
    _drop(
        settings,
        "part-1.jsonl",
        [
            *carts,
            make_event(event_id="c-abandoner", user_id="abandoner", event_type="add_to_cart", item_id="i1", ts=_iso(0)),
            make_event(event_id="p-buyer", user_id="buyer", event_type="purchase", item_id="i1", ts=_iso(10)),
            '{"event_id": "broken", "user_id": ',
            make_event(event_id="x-type", event_type="teleport"),
            # The batch cleaner's field rules: a control character in an id, bytes that are not UTF-8.
            make_event(event_id="x-nul", user_id="nul\u0000user"),
            NOT_UTF8,
        ],
    )
    _run_once(spark, settings, checkpoint)
    assert _rows(engine, "SELECT count(*) FROM push.triggers") == [(0,)]  # nothing due yet
    # "gone" is erased while their cart waits in the stream's state; more of their lines arrive.
    erase_user(settings, "gone", T + timedelta(minutes=20))

    # Later events move the watermark past the carts' due time (10:30); one event is late.
    _drop(
        settings,
        "part-2.jsonl",
        [
            make_event(event_id="v-late", user_id="browser", item_id="i7", ts=_iso(-60)),
            make_event(event_id="v-now", user_id="browser", item_id="i7", ts=_iso(45)),
            make_event(event_id="v-gone", user_id="gone", item_id="i7", ts=_iso(40)),
            '{"event_id": "gone-broken", "user_id": "gone", "ts": ',
        ],
    )
    # A gzip cut in the middle and a file that only claims to be gzip: the reader skips them,
    # the stream records them as the batch cleaner would.
    packed = gzip.compress(b"".join(json.dumps(make_event(event_id=f"z{n}")).encode() + b"\n" for n in range(300)))
    _drop_bytes(settings, "part-3.jsonl.gz", packed[: len(packed) // 2])
    _drop_bytes(settings, "part-4.jsonl.gz", b"not gzip at all\n")
    _run_once(spark, settings, checkpoint)
    _run_once(spark, settings, checkpoint)  # a step without new files: the timeouts fire

    triggers = _rows(engine, "SELECT user_id, trigger_type, item_id, fire_at, origin FROM push.triggers ORDER BY 1")
    fired = T + timedelta(minutes=30)
    assert triggers == sorted(
        (u, "cart_abandonment", "i1", fired, "stream") for u in ("abandoner", "capped", "optout", "night", holdout)
    )
    decisions = dict(_rows(engine, "SELECT user_id, decision FROM push.notification_decisions"))
    assert decisions == {
        "abandoner": "sent",
        "capped": "capped_min_gap",
        "optout": "suppressed_consent",
        "night": "deferred_quiet_hours",
        holdout: "holdout",
    }
    reasons = dict(
        _rows(engine, "SELECT reason, count(*) FROM push.quarantine WHERE stream_batch IS NOT NULL GROUP BY 1")
    )
    assert reasons == {
        "malformed_json": 1,
        "unknown_event_type": 1,
        "late_event": 1,
        "erased_user": 2,
        "control_character": 1,
        "invalid_utf8": 1,
    }
    # As in the batch quarantine: a readable copy in raw, the exact bytes beside it.
    raw, raw_bytes = _rows(engine, "SELECT raw, raw_bytes FROM push.quarantine WHERE reason = 'invalid_utf8'")[0]
    assert bytes(raw_bytes) == NOT_UTF8
    assert raw == NOT_UTF8.decode("utf-8", "replace")
    totals = _rows(
        engine,
        "SELECT sum(input_rows), sum(clean_rows), sum(quarantined_rows), sum(duplicate_rows), sum(late_rows)"
        " FROM push.stream_batches",
    )
    # gone's cart counted clean before the erasure; their two later lines quarantined, text dropped.
    assert totals == [(17, 9, 7, 1, 1)]
    assert _rows(engine, "SELECT raw FROM push.quarantine WHERE reason = 'erased_user'") == [(None,), (None,)]
    unreadable = _rows(engine, "SELECT source_file, reason, partial, landing_hour FROM push.quarantined_files")
    assert sorted((Path(f).name, r, partial) for f, r, partial, _ in unreadable) == [
        ("part-3.jsonl.gz", "truncated_gzip", False),
        ("part-4.jsonl.gz", "corrupt_gzip", False),
    ]
    assert _rows(engine, "SELECT sum(files), sum(files_quarantined) FROM push.stream_batches") == [(2, 2)]
    with engine.connect() as conn:
        assert find_mentions(conn, "gone") == {}
    # The batch planner, on the same triggers at the same time, decides the same.
    stream_ledger = _rows(engine, "SELECT user_id, status FROM push.notification_ledger WHERE run_key LIKE 'stream-%'")
    assert sorted(stream_ledger) == [("abandoner", "sent"), ("night", "pending")]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM push.notification_ledger WHERE run_key LIKE 'stream-%'"))
    batch = plan_notifications(settings, fired, kinds=("trigger",), dry_run=True)
    assert batch["decisions"] == {
        "sent": 1,
        "capped_min_gap": 1,
        "suppressed_consent": 1,
        "deferred_quiet_hours": 1,
        "holdout": 1,
    }


def _list_of(engine, user: str) -> list[str]:
    return [
        item
        for (item,) in _rows(
            engine,
            "SELECT r.item_id FROM push.recommendations r JOIN push.published_recommendations p USING (run_id)"
            " WHERE r.user_id = :u ORDER BY r.rank",
            u=user,
        )
    ]


def test_a_session_changes_the_users_list_within_the_batch(spark, settings, stream_env, engine):
    """A live model knows "browser" as a reader of books; their session in shoes turns their list
    to shoes in the batch that reads it, the carted shoe leaves it, and nobody else's list moves."""
    settings = replace(settings, top_n=5)  # the catalogue has 10 items
    shoes, books = [f"i{n}" for n in range(5)], [f"i{n}" for n in range(5, 10)]
    # Shoppers who take shoes together and books together teach the model the two groups.
    pairs = [(f"s{n}", item) for n in range(30) for item in (shoes if n % 2 else books)]
    pairs += [("browser", "i5"), ("browser", "i6")]
    ratings = pd.DataFrame(pairs, columns=["user_id", "item_id"]).assign(
        rating=3.0, evidence=1.0, bought=False, last_ts=pd.Timestamp("2026-11-23 12:00")
    )
    publish_model(settings, ratings, T - timedelta(hours=10), train_end=T - timedelta(hours=1))
    before = {user: _list_of(engine, user) for user in ("browser", "buyer")}
    assert set(before["browser"][:3]) <= set(books)

    _drop(
        settings,
        "session.jsonl",
        [
            make_event(event_id="s1", user_id="browser", item_id="i1", ts=_iso(1)),
            make_event(event_id="s2", user_id="browser", item_id="i2", ts=_iso(2)),
            make_event(event_id="s3", user_id="browser", event_type="add_to_cart", item_id="i3", ts=_iso(3)),
        ],
    )
    _run_once(spark, settings, stream_env["checkpoint"])
    after = _list_of(engine, "browser")
    assert "i3" not in after  # carted: gone at once
    assert set(after[:2]) <= set(shoes) - {"i3"}
    assert _list_of(engine, "buyer") == before["buyer"]
    refreshed = _rows(engine, "SELECT lists_refreshed, lists_error FROM push.stream_batches WHERE input_rows > 0")
    assert refreshed == [(1, None)]


# --- kill -9 and restart ----------------------------------------------------------------------------
CRASH_FILES = [
    # Carts at 10:00 (due 10:30); the buyer pays before the delay; the night owl is in quiet hours.
    [
        make_event(event_id="k1", user_id="abandoner", event_type="add_to_cart", item_id="i1", ts=_iso(0)),
        make_event(event_id="k2", user_id="buyer", event_type="add_to_cart", item_id="i2", ts=_iso(0)),
        make_event(event_id="k3", user_id="buyer", event_type="purchase", item_id="i2", ts=_iso(5)),
        make_event(event_id="k4", user_id="night", event_type="add_to_cart", item_id="i3", ts=_iso(1)),
    ],
    # Carts at 10:20 (due 10:50) and a browse burst in shoes (window 10:00-10:30).
    [
        make_event(event_id="k5", user_id="capped", event_type="add_to_cart", item_id="i8", ts=_iso(20)),
        make_event(event_id="k6", user_id="optout", event_type="add_to_cart", item_id="i9", ts=_iso(20)),
        *[
            make_event(event_id=f"b{n}", user_id="browser", event_type="view", item_id=f"i{n % 4}", ts=_iso(21 + n))
            for n in range(5)
        ],
    ],
    # Event time moves on: the first carts and the browse window are due.
    [make_event(event_id="k7", user_id="browser", item_id="i7", ts=_iso(45))],
    # ... and the second carts.
    [make_event(event_id="k8", user_id="browser", item_id="i7", ts=_iso(75)), "not json"],
]


def _outcome(engine) -> dict:
    return {
        "triggers": _rows(
            engine, "SELECT trigger_key, user_id, trigger_type, cancelled_at IS NULL FROM push.triggers ORDER BY 1"
        ),
        "decisions": _rows(
            engine, "SELECT user_id, candidate_key, decision FROM push.notification_decisions ORDER BY 1, 2"
        ),
        "outbox": _rows(
            engine,
            "SELECT idempotency_key, user_id, channel, status FROM push.notification_ledger"
            " WHERE run_key LIKE 'stream-%' ORDER BY 1",
        ),
        "quarantine": _rows(engine, "SELECT reason, raw FROM push.quarantine ORDER BY 1"),
    }


def _start_job(settings, checkpoint: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PUSH_DATABASE_URL": settings.database_url,
        "PUSH_STREAM_WATERMARK_SECONDS": "600",
        "PUSH_STREAM_STATE_PARTITIONS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.stream.job", "--trigger-seconds", "1", "--checkpoint", str(checkpoint)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(condition, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _recorded_files(engine) -> int:
    return _rows(engine, "SELECT coalesce(sum(files), 0) FROM push.stream_batches WHERE recorded_at IS NOT NULL")[0][0]


def test_kill_9_and_restart_from_the_checkpoint_changes_nothing(spark, settings, stream_env, engine, tmp_path):
    # The uninterrupted reference: every file at once, in-process.
    for n, lines in enumerate(CRASH_FILES):
        _drop(settings, f"crash-{n}.jsonl", lines)
    _run_once(spark, settings, stream_env["checkpoint"])
    expected = _outcome(engine)
    assert {(u, t) for _, u, t, live in expected["triggers"] if live} == {
        ("abandoner", "cart_abandonment"),
        ("night", "cart_abandonment"),
        ("capped", "cart_abandonment"),
        ("optout", "cart_abandonment"),
        ("browser", "browse_intent"),
    }
    assert len(expected["decisions"]) == 5

    # The same files dropped over time into a fresh database and checkpoint, with a kill -9 mid-stream.
    with engine.begin() as conn:
        for table in (
            "triggers",
            "notification_decisions",
            "notification_runs",
            "quarantine",
            "stream_batches",
            "recent_interactions",
            "notify_user_state",
            "delivery_attempts",
        ):
            conn.execute(text(f"DELETE FROM push.{table}"))
        conn.execute(text("DELETE FROM push.notification_ledger WHERE run_key LIKE 'stream-%'"))
    shutil.rmtree(settings.landing_dir / "events", ignore_errors=True)
    checkpoint, log = tmp_path / "crash-checkpoint", tmp_path / "stream.log"
    job = _start_job(settings, checkpoint, log)
    killed_mid_batch = False
    try:
        _drop(settings, "crash-0.jsonl", CRASH_FILES[0])
        _drop(settings, "crash-1.jsonl", CRASH_FILES[1])
        _wait(lambda: _recorded_files(engine) >= 2, 90, "the first files processed", job, log)
        _drop(settings, "crash-2.jsonl", CRASH_FILES[2])
        _drop(settings, "crash-3.jsonl", CRASH_FILES[3])
        # Kill while a batch's effects are stored but its decisions are not (or right after, at worst).
        pending = "SELECT count(*) FROM push.stream_batches WHERE recorded_at IS NULL AND triggers > 0"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.poll() is None:
            if _rows(engine, pending)[0][0]:
                killed_mid_batch = True
                break
            if _rows(engine, "SELECT count(*) FROM push.notification_decisions")[0][0] >= 3:
                break
            time.sleep(0.01)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        job = _start_job(settings, checkpoint, log)
        _wait(lambda: len(_outcome(engine)["decisions"]) >= 5 and _recorded_files(engine) >= 4, 120, "all", job, log)
        time.sleep(2)  # a duplicate would show up now
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    actual = _outcome(engine)
    assert actual == expected, f"killed mid-batch: {killed_mid_batch}"
    replays = _rows(engine, "SELECT count(*) FROM push.stream_batches WHERE recorded_at IS NULL")
    assert replays == [(0,)]  # the interrupted batch was finished after the restart
