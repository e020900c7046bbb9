"""The micro-batch writer: store a batch's effects once, then decide and relay through the one policy engine.

``foreachBatch`` may run a batch again after a crash (Spark re-executes the last planned batch
on restart, with the same files and the same state). Each batch is therefore written in phases
that are each safe to repeat:

1. **Store** (one transaction): triggers (upsert by trigger key, the batch detector's SQL),
   recent interactions, item triggers (the batch detector's SQL), quarantined lines, and the
   batch's row in ``push.stream_batches`` with its decision time and the users to plan. If that
   row already exists the batch's effects are stored and this phase is skipped; the decision time
   and users are read back from it, so a replay plans exactly what the first attempt meant to.
2. **Lists**: the users with item events in the batch get their recommendation lists folded in
   from their latest activity (``jobs.recs.refresh.refresh_user_lists``), so the lists the
   policy and the triggers read reflect the session within the batch; a replay writes the same.
3. **Decide**: :func:`jobs.notify.plan.plan_notifications` with the batch's own run key; decisions
   of a run key are immutable, so a replay decides only users the first attempt had not reached.
4. **Relay** due outbox rows (the relay claims each row once) and stamp the batch as recorded.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener
from sqlalchemy import Connection, text

from jobs.core.config import Settings
from jobs.core.db import copy_rows, load_query, make_engine
from jobs.core.timeutil import utc_columns
from jobs.ingest.landing import FileProblem, file_path, read_problem
from jobs.ingest.rules import bot_users
from jobs.notify.plan import plan_notifications
from jobs.notify.relay import relay_pending
from jobs.notify.triggers import (
    ITEM_TRIGGERS_SQL,
    TRIGGER_COLUMNS,
    browse_intent_key,
    cart_abandonment_key,
    item_trigger_params,
    store_triggers,
)
from jobs.privacy.suppression import ERASED_REASON, erased_among, line_subjects
from jobs.profiles.interactions import recent_interactions_frame
from jobs.recs.refresh import refresh_user_lists
from jobs.stream.transforms import OUTPUT_SCHEMA

log = logging.getLogger(__name__)

LATE_REASON = "late_event"
INTERACTION_COLUMNS = ("user_id", "item_id", "last_viewed_at", "last_carted_at", "last_purchased_at")
QUARANTINE_COLUMNS = (
    "window_start",
    "landing_hour",
    "source_file",
    "line_no",
    "reason",
    "raw",
    "raw_bytes",
    "stream_batch",
)

_STORE_QUARANTINE = """
INSERT INTO push.quarantine (window_start, landing_hour, source_file, line_no, reason, raw, raw_bytes, stream_batch)
SELECT window_start, landing_hour, source_file, line_no, reason, raw, raw_bytes, stream_batch FROM quarantine_stage
ON CONFLICT (source_file, line_no) WHERE stream_batch IS NOT NULL DO NOTHING
"""

_INSERT_BATCH = load_query("stream/insert_batch")

# A file the stream could not read, recorded as the batch cleaner records it. The batch cleaner
# of its landing hour later replaces the row with its own finding (with the readable prefix of
# a truncated gzip); a replayed batch adds nothing.
_STORE_UNREADABLE_FILE = """
INSERT INTO push.quarantined_files (window_start, window_end, landing_hour, source_file, size_bytes, reason, error,
    partial, lines_read)
VALUES (:hour, :hour + interval '1 hour', :hour, :path, :size, :reason, :error, false, NULL)
ON CONFLICT (window_start, source_file) DO NOTHING
"""


# --- reading Spark's own logs -----------------------------------------------------------------------
def query_id(checkpoint: Path) -> str:
    """The query's id, kept in the checkpoint: batch ids restart at 0 with a new checkpoint."""
    return json.loads((checkpoint / "metadata").read_text())["id"]


def batch_watermark_ms(checkpoint: Path, batch_id: int) -> int:
    """The event-time watermark recorded for ``batch_id`` in the offset log (0 if none yet).

    Spark writes this log before running the batch and reuses it when it re-runs the batch, so
    the value is the same on a replay.
    """
    path = checkpoint / "offsets" / str(batch_id)
    if batch_id < 0 or not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return int(json.loads(lines[1]).get("batchWatermarkMs", 0))


def batch_source_files(checkpoint: Path, batch_id: int) -> list[str]:
    """The files the file source gave ``batch_id``, as local paths (none for a Kafka source).

    The offset log of a query batch holds the file source's own log offset; the batch read the
    source's log entries after the previous batch's offset up to its own. Those entries sit in
    ``sources/0/<n>``, or in the ``.compact`` file that replaces a run of them. Spark writes
    both before running the batch and reuses them on a replay.
    """
    current = _file_log_offset(checkpoint, batch_id)
    if current is None:
        return []
    previous = _file_log_offset(checkpoint, batch_id - 1)
    folder = checkpoint / "sources" / "0"
    files = set()
    for n in range(0 if previous is None else previous + 1, current + 1):
        log_file = folder / str(n)
        if not log_file.exists():
            compacted = sorted(
                (int(path.name.split(".")[0]), path)
                for path in folder.glob("*.compact")
                if int(path.name.split(".")[0]) >= n
            )
            if not compacted:
                continue
            log_file = compacted[0][1]
        for line in log_file.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("batchId") == n and "path" in entry:
                    files.add(_local_or_uri(entry["path"]))
    return sorted(files)


def _file_log_offset(checkpoint: Path, batch_id: int) -> int | None:
    """The file source's log offset recorded for a query batch (None: no such batch, or not a file source)."""
    path = checkpoint / "offsets" / str(batch_id)
    if batch_id < 0 or not path.exists():
        return None
    lines = path.read_text().splitlines()
    try:
        return int(json.loads(lines[2])["logOffset"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _local_or_uri(path: str) -> str:
    """A local path for ``file:`` URIs and plain paths; any other URI as it is."""
    return str(file_path(path)) if path.startswith("file:") or "://" not in path else path


def unread_files(listed: list[str], with_lines: list[str]) -> list[FileProblem]:
    """The listed local files that gave no line and cannot be read (an empty file reads, and gives none).

    Files on a remote file system (``s3a://``, ``hdfs://``) are not probed from the driver: the
    batch cleaner of their landing hour finds and records them.
    """
    seen = {_local_or_uri(path) for path in with_lines}
    problems = []
    for path in listed:
        if "://" in path or path in seen:
            continue
        if (problem := read_problem(path, landing_hour_of(path))) is not None:
            problems.append(problem)
    return problems


def landing_hour_of(path: str) -> datetime:
    """The landing hour in a file's ``date=/hour=`` folders, else the hour it was last modified."""
    found = _LANDING_FOLDERS.search(path)
    if found:
        return datetime.fromisoformat(found.group(1)).replace(hour=int(found.group(2)), tzinfo=UTC)
    try:
        modified = datetime.fromtimestamp(Path(path).stat().st_mtime, UTC)
    except OSError:
        modified = datetime.now(UTC)
    return modified.replace(minute=0, second=0, microsecond=0)


_LANDING_FOLDERS = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")


# --- pure accounting of one micro-batch -------------------------------------------------------------
@dataclass
class BatchOutcome:
    """What one micro-batch produced, as pandas frames and counts (small: one batch)."""

    counts: dict[str, int]
    by_reason: dict[str, int]
    quarantine: pd.DataFrame
    triggers: pd.DataFrame
    interactions: pd.DataFrame
    clean_max_ts: datetime | None
    files: list[str] = field(default_factory=list)
    first_landed_at: datetime | None = None
    last_landed_at: datetime | None = None


def _utc(value) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()


def trigger_key() -> Column:
    """Trigger key of a ``cart`` or ``browse`` output row (the batch detector's key functions).

    Computed by Spark while the batch is collected, so the stream's keys come from the same
    functions as the hourly detector's and a trigger both find is one row. Null for other kinds.
    """
    kind = F.col("kind")
    return (
        F.when(kind == "cart", cart_abandonment_key(F.col("user_id"), F.col("item_id"), F.col("cart_day")))
        .when(kind == "browse", browse_intent_key(F.col("user_id"), F.col("category"), F.col("window_start")))
        .alias("trigger_key")
    )


# What the writer reads of a micro-batch's output: every column but the event id, plus the key.
BATCH_COLUMNS = tuple(f.name for f in OUTPUT_SCHEMA.fields if f.name != "event_id")
_TRIGGER_TYPES = {"cart": "cart_abandonment", "browse": "browse_intent"}


def trigger_rows(outputs: pd.DataFrame, expiry: timedelta) -> pd.DataFrame:
    """Trigger rows (``push.triggers`` columns) from collected ``cart`` and ``browse`` outputs.

    A cart can fire and be cancelled in the same batch: it is one row, cancelled. A browse row
    has no cancellation and a cart row no category (the tagged output leaves them null).
    """
    rows = pd.DataFrame(
        {
            "trigger_key": outputs["trigger_key"],
            "user_id": outputs["user_id"],
            "trigger_type": outputs["kind"].map(_TRIGGER_TYPES),
            "item_id": outputs["item_id"],
            "category": outputs["category"],
            "detected_at": outputs["fire_at"],
            "fire_at": outputs["fire_at"],
            "expires_at": outputs["fire_at"] + expiry,
            "origin": "stream",
            "cancelled_at": outputs["cancelled_at"],
        },
        columns=list(TRIGGER_COLUMNS),
    )
    return (
        rows.sort_values(["trigger_key", "cancelled_at"], na_position="first")
        .drop_duplicates("trigger_key", keep="last")
        .reset_index(drop=True)
    )


def _no_erased_users(user_ids: set[str]) -> set[str]:
    return set()


def account_batch(
    out: DataFrame,
    batch_id: int,
    late_watermark_ms: int,
    bot_events_per_minute: int,
    expiry: timedelta,
    find_erased: Callable[[set[str]], set[str]] = _no_erased_users,
) -> BatchOutcome:
    """Split one micro-batch output into what to store, and count it.

    ``input = clean + quarantined + duplicates`` as in the batch cleaner; quarantined lines carry
    the cleaner's reasons, ``erased_user`` (the user is on the suppression list: the line is
    counted but its text is not kept), ``late_event`` (at or before the watermark the state
    operators ran with, so they dropped it) or ``bot`` (the cleaner's per-minute rule, applied to
    the batch's first deliveries). ``find_erased`` is asked once per batch which of the users it
    names are erased; their events, interactions and triggers (also those fired from state built
    before the erasure) are dropped. The batch is read with one Spark action (its lines, first
    deliveries and trigger outputs with their keys) and the rest is pandas on that small frame:
    on a 2-core machine each further Spark job cost seconds, which is most of what a batch spent.
    """
    frame = out.select(*BATCH_COLUMNS, trigger_key()).toPandas()
    # The batch taken apart, in one place: its lines, first deliveries and trigger outputs,
    # without the users on the erasure suppression list.
    lines = frame[frame["kind"] == "line"].copy()
    subjects = line_subjects(lines["user_id"], lines["value"])
    erased = find_erased(set(subjects.dropna()) | set(frame["user_id"].dropna()))
    is_erased = subjects.isin(erased).fillna(False).astype(bool)
    events = frame[(frame["kind"] == "event") & ~frame["user_id"].isin(erased)]
    outputs = frame[frame["kind"].isin(list(_TRIGGER_TYPES)) & ~frame["user_id"].isin(erased)]

    late_cutoff = pd.Timestamp(late_watermark_ms, unit="ms") if late_watermark_ms else None
    is_late = lines["reason"].isna() & ~is_erased & (lines["ts"] <= late_cutoff if late_cutoff is not None else False)
    lines.loc[is_late, "reason"] = LATE_REASON
    lines.loc[is_erased, "reason"] = ERASED_REASON
    lines.loc[is_erased, "value"] = None
    lines.loc[is_erased, "raw_bytes"] = None
    bots = bot_users(events, bot_events_per_minute)
    is_bot_event = events["user_id"].isin(bots)
    bot_lines = set(zip(events.loc[is_bot_event, "source_file"], events.loc[is_bot_event, "line_no"], strict=True))
    if bot_lines:
        is_bot = [(f, n) in bot_lines for f, n in zip(lines["source_file"], lines["line_no"], strict=True)]
        lines.loc[is_bot, "reason"] = "bot"
    clean = events[~is_bot_event]
    interactions = recent_interactions_frame(clean)[list(INTERACTION_COLUMNS)]
    triggers = trigger_rows(outputs[~outputs["user_id"].isin(bots)], expiry)

    rejected = lines[lines["reason"].notna()]
    hours = pd.to_datetime(rejected["landing_date"]) + pd.to_timedelta(rejected["landing_hour"], unit="h")
    quarantine = pd.DataFrame(
        {
            "window_start": hours,
            "landing_hour": hours,
            "source_file": rejected["source_file"],
            "line_no": rejected["line_no"],
            "reason": rejected["reason"],
            # Already readable text (NUL escaped, invalid UTF-8 replaced); exact bytes beside it.
            "raw": rejected["value"],
            "raw_bytes": rejected["raw_bytes"].map(lambda b: None if b is None else "\\x" + bytes(b).hex()),
            "stream_batch": batch_id,
        }
    )
    by_reason = {str(k): int(v) for k, v in rejected["reason"].value_counts().sort_index().items()}
    on_time_valid = int((lines["reason"].isna() | (lines["reason"] == "bot")).sum())
    # Bots were first deliveries: the on-time valid lines are the unique ones plus the duplicates.
    counts = {
        "input_rows": len(lines),
        "clean_rows": len(clean),
        "quarantined_rows": len(rejected),
        "duplicate_rows": on_time_valid - len(events),
        "late_rows": int(is_late.sum()),
    }
    return BatchOutcome(
        counts=counts,
        by_reason=by_reason,
        quarantine=utc_columns(quarantine, ("window_start", "landing_hour")),
        triggers=utc_columns(triggers, ("detected_at", "fire_at", "expires_at", "cancelled_at")),
        interactions=utc_columns(interactions, ("last_viewed_at", "last_carted_at", "last_purchased_at")),
        clean_max_ts=_utc(clean["ts"].max()) if len(clean) else None,
        files=sorted(set(lines["source_file"])),
        first_landed_at=_utc(lines["landed_at"].min()) if len(lines) else None,
        last_landed_at=_utc(lines["landed_at"].max()) if len(lines) else None,
    )


# --- the writer ---------------------------------------------------------------------------------------
@dataclass
class StreamBatchWriter:
    """``foreachBatch`` target. Holds only configuration, so Spark may call it again for a batch."""

    settings: Settings
    checkpoint: Path
    relay: bool = True
    refresh_lists: bool = True

    @cached_property
    def query_id(self) -> str:
        return query_id(self.checkpoint)

    def run_key(self, batch_id: int) -> str:
        return f"stream-{self.query_id[:8]}-{batch_id}"

    def __call__(self, out: DataFrame, batch_id: int) -> None:
        started = datetime.now(UTC)
        timings: dict[str, int] = {}
        engine = make_engine(self.settings.database_url)
        # The batch is always computed in full, even on a replay whose effects are stored: running
        # it is what commits the stateful operators' state for this batch id.
        out = out.persist()
        try:
            with _timed(timings, "account"):
                # Late rows are those the state operators dropped: their watermark for late data
                # is the one the previous batch ended with.
                outcome = account_batch(
                    out,
                    batch_id,
                    batch_watermark_ms(self.checkpoint, batch_id - 1),
                    self.settings.bot_events_per_minute,
                    timedelta(hours=self.settings.trigger_expiry_hours),
                    self._find_erased,
                )
            # Files the source gave this batch that gave no line and cannot be read (skipped
            # by ignoreCorruptFiles, which says nothing of them).
            unreadable = unread_files(batch_source_files(self.checkpoint, batch_id), outcome.files)
        finally:
            out.unpersist()
        if unreadable:
            log.warning(
                "stream batch %s: unreadable landing files %s", batch_id, [(p.path, p.reason) for p in unreadable]
            )
        with _timed(timings, "store"):
            with engine.connect() as conn:
                stored = _stored_batch(conn, self.query_id, batch_id)
            if stored is None:
                stored = self._store(outcome, batch_id, started, unreadable)
            else:
                log.info("stream batch %s was stored before a restart: finishing its plan", batch_id)
        logical_at, users = stored
        lists = self._refresh_lists(outcome, timings)
        decisions: dict = {}
        relayed: dict = {}
        if logical_at is not None and users:
            with _timed(timings, "plan"):
                decisions = plan_notifications(
                    self.settings,
                    logical_at,
                    horizon_hours=1,
                    kinds=("trigger",),
                    users=users,
                    run_key=self.run_key(batch_id),
                )["decisions"]
            if self.relay:
                with _timed(timings, "relay"):
                    relayed = relay_pending(self.settings, until=logical_at)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE push.stream_batches SET decisions = CAST(:d AS jsonb), relayed = CAST(:r AS jsonb),"
                    " writer_ms = CAST(:t AS jsonb), lists_refreshed = :lists, lists_error = :lists_error,"
                    " recorded_at = clock_timestamp()"
                    " WHERE query_id = :q AND batch_id = :b"
                ),
                {
                    "d": json.dumps(decisions),
                    "r": json.dumps(relayed),
                    "t": json.dumps(timings),
                    "lists": lists.get("refreshed_users"),
                    "lists_error": lists.get("error"),
                    "q": self.query_id,
                    "b": batch_id,
                },
            )
        log.info("stream batch %s: decisions %s, relayed %s, ms %s", batch_id, decisions, relayed, timings)

    def _refresh_lists(self, outcome: BatchOutcome, timings: dict[str, int]) -> dict:
        """The batch's users' lists, refreshed before their triggers are planned.

        A failure here (a model file gone, say) is logged and recorded on the batch row, never
        raised: triggers and the quarantine go on, and the hourly refresh rebuilds the lists.
        """
        users = sorted(set(outcome.interactions["user_id"]))
        if not self.refresh_lists or not users or outcome.clean_max_ts is None:
            return {}
        with _timed(timings, "lists"):
            try:
                return refresh_user_lists(self.settings, users, outcome.clean_max_ts)
            except Exception as error:
                log.exception("stream: refreshing the lists of %d users failed", len(users))
                return {"refreshed_users": None, "error": f"{type(error).__name__}: {error}"[:500]}

    def _find_erased(self, user_ids: set[str]) -> set[str]:
        with make_engine(self.settings.database_url).connect() as conn:
            return erased_among(conn, user_ids, self.settings.pseudonym_key)

    def _store(
        self, outcome: BatchOutcome, batch_id: int, started: datetime, unreadable: list[FileProblem]
    ) -> tuple[datetime | None, list[str]]:
        """Phase 1: every effect of the batch and its row, in one transaction."""
        triggers = outcome.triggers
        live = triggers[triggers["cancelled_at"].isna()]
        fire_times = [t.to_pydatetime() for t in live["fire_at"]]
        users = set(live["user_id"])
        keys = list(triggers["trigger_key"])
        with make_engine(self.settings.database_url).begin() as conn:
            store_triggers(conn, triggers, outcome.interactions)
            if outcome.clean_max_ts is not None:
                for key, user, fire_at in _insert_item_triggers(conn, self.settings, outcome.clean_max_ts):
                    keys.append(key)
                    users.add(user)
                    fire_times.append(fire_at)
            _store_quarantine(conn, outcome.quarantine)
            for problem in unreadable:
                conn.execute(
                    text(_STORE_UNREADABLE_FILE),
                    {
                        "hour": problem.landing_hour,
                        "path": problem.path,
                        "size": problem.size_bytes,
                        "reason": problem.reason,
                        "error": problem.error,
                    },
                )
            logical_at = max(fire_times) if fire_times else None
            conn.execute(
                text(_INSERT_BATCH),
                {
                    "query_id": self.query_id,
                    "batch_id": batch_id,
                    "run_key": self.run_key(batch_id),
                    "logical_at": logical_at,
                    "watermark": _ms_to_utc(batch_watermark_ms(self.checkpoint, batch_id)),
                    **outcome.counts,
                    "by_reason": json.dumps(outcome.by_reason),
                    "files": len(outcome.files),
                    "source_files": outcome.files,
                    "first_landed_at": outcome.first_landed_at,
                    "last_landed_at": outcome.last_landed_at,
                    "triggers": len(keys),
                    "trigger_keys": keys,
                    "trigger_users": sorted(users),
                    "started_at": started,
                    "files_quarantined": len(unreadable),
                    "quarantined_files": [p.path for p in unreadable],
                },
            )
        return logical_at, sorted(users)


@contextmanager
def _timed(timings: dict[str, int], phase: str):
    """Add the wall-clock milliseconds of the block to ``timings[phase]``."""
    began = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0) + round((time.perf_counter() - began) * 1000)


def _ms_to_utc(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _stored_batch(conn: Connection, query: str, batch_id: int) -> tuple[datetime | None, list[str]] | None:
    row = conn.execute(
        text("SELECT logical_at, trigger_users FROM push.stream_batches WHERE query_id = :q AND batch_id = :b"),
        {"q": query, "b": batch_id},
    ).one_or_none()
    return None if row is None else (row.logical_at, list(row.trigger_users))


def _insert_item_triggers(conn: Connection, settings: Settings, until: datetime) -> list[tuple]:
    """The batch detector's item-trigger SQL at the stream's event time; the new triggers."""
    sql = ITEM_TRIGGERS_SQL.rstrip().rstrip(";") + "\nRETURNING trigger_key, user_id, fire_at"
    return [tuple(row) for row in conn.execute(text(sql), item_trigger_params(settings, until))]


def _store_quarantine(conn: Connection, quarantine: pd.DataFrame) -> None:
    if quarantine.empty:
        return
    conn.execute(text("CREATE TEMP TABLE quarantine_stage (LIKE push.quarantine) ON COMMIT DROP"))
    clean = quarantine[list(QUARANTINE_COLUMNS)].astype(object).where(quarantine.notna(), None)
    copy_rows(conn, "quarantine_stage", QUARANTINE_COLUMNS, clean.itertuples(index=False, name=None))
    conn.execute(text(_STORE_QUARANTINE))


# --- Spark's progress reports ------------------------------------------------------------------------
class ProgressRecorder(StreamingQueryListener):
    """Copies each batch's progress report (rates, duration, state size) onto its row."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def onQueryStarted(self, event) -> None:
        log.info("stream query %s started", event.id)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        log.info("stream query %s terminated%s", event.id, f": {event.exception}" if event.exception else "")

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        operators = progress.stateOperators or []
        try:
            with make_engine(self.settings.database_url).begin() as conn:
                conn.execute(
                    text(
                        "UPDATE push.stream_batches SET input_rows_per_second = :irs,"
                        " processed_rows_per_second = :prs, duration_ms = :ms, state_rows = :rows,"
                        " state_memory_bytes = :mem, rows_dropped_by_watermark = :dropped,"
                        " spark_ms = CAST(:spark_ms AS jsonb) WHERE query_id = :q AND batch_id = :b"
                    ),
                    {
                        "spark_ms": json.dumps(dict(progress.durationMs or {})),
                        "irs": _finite(progress.inputRowsPerSecond),
                        "prs": _finite(progress.processedRowsPerSecond),
                        "ms": (progress.durationMs or {}).get("triggerExecution"),
                        "rows": sum(op.numRowsTotal for op in operators),
                        "mem": sum(op.memoryUsedBytes for op in operators),
                        "dropped": sum(op.numRowsDroppedByWatermark for op in operators),
                        "q": str(progress.id),
                        "b": progress.batchId,
                    },
                )
        except Exception:  # metrics must never stop the stream
            log.exception("could not record progress of batch %s", progress.batchId)


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value and abs(value) != float("inf") else None
