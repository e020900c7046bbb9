"""Settings of the streaming job that the batch pipeline does not need.

They are read from ``PUSH_STREAM_*`` environment variables next to the pipeline's
:class:`~jobs.core.config.Settings` (cart delay, browse window, policy knobs and paths come from
there, so both paths use the same values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jobs.core.config import Settings


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PUSH_STREAM_{name}", default)


@dataclass(frozen=True)
class StreamOptions:
    """Knobs of the streaming job. Build with :meth:`from_env`; override fields in tests."""

    # Micro-batch interval: the floor of landing-to-decision latency.
    trigger_seconds: float = field(default_factory=lambda: float(_env("TRIGGER_SECONDS", "5")))
    # How far behind the newest event time an event may arrive and still count.
    watermark_seconds: int = field(default_factory=lambda: int(_env("WATERMARK_SECONDS", "600")))
    # Files per micro-batch: bounds a batch's size after a backlog (a restart, a burst).
    max_files_per_trigger: int = field(default_factory=lambda: int(_env("MAX_FILES_PER_TRIGGER", "200")))
    # Partitions of the state stores (fixed when a checkpoint is created).
    state_partitions: int = field(default_factory=lambda: int(_env("STATE_PARTITIONS", "2")))
    # Refresh the lists of each batch's users from their activity (jobs.recs.refresh): "false" leaves it to the hourly run.
    refresh_lists: bool = field(default_factory=lambda: _env("REFRESH_LISTS", "true").lower() in ("1", "true", "yes"))
    # Kafka instead of the landing folder when both are set.
    kafka_bootstrap: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP", ""))
    kafka_topic: str = field(default_factory=lambda: _env("KAFKA_TOPIC", ""))
    kafka_package: str = field(default_factory=lambda: _env("KAFKA_PACKAGE", ""))
    checkpoint_dir: Path | None = field(
        default_factory=lambda: Path(_env("CHECKPOINT_DIR", "")) if _env("CHECKPOINT_DIR", "") else None
    )

    @classmethod
    def from_env(cls) -> StreamOptions:
        return cls()

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap and self.kafka_topic)


def stream_dir(settings: Settings) -> Path:
    """Where the job keeps its checkpoint, pid file and log (``<local>/stream``)."""
    return settings.local_dir / "stream"


def checkpoint_dir(settings: Settings, options: StreamOptions) -> Path:
    return options.checkpoint_dir or stream_dir(settings) / "checkpoint"


def live_dir(settings: Settings) -> Path:
    """The drop folder for files that are not part of an hourly landing partition."""
    return settings.landing_dir / "events" / "live"
