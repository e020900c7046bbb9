"""Delivery channels behind one small interface.

Each adapter takes an ``OutboundMessage`` and either returns or raises. ``FileSink`` is the
demo channel: it writes one JSON file per idempotency key, so a re-delivery overwrites
instead of duplicating (the exactly-once effect real gateways get from the idempotency key).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class OutboundMessage:
    idempotency_key: str
    user_id: str
    channel: str
    source: str
    item_id: str | None
    payload: dict


class Channel(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> None: ...


@dataclass
class FileSink:
    """Writes messages as JSON files under ``folder/<channel>/<idempotency_key>.json``."""

    folder: Path
    name: str = "file"

    def send(self, message: OutboundMessage) -> None:
        target = self.folder / message.channel / f"{message.idempotency_key}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(message), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(partial, target)  # atomic: a reader never sees half a message
