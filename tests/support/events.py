"""Raw behaviour events and landing files, as the pipeline's sources deliver them."""

from __future__ import annotations

import json
from pathlib import Path


def make_event(**overrides) -> dict:
    """A valid raw event; override any field (a field set to None is left out)."""
    base = {
        "event_id": "e1",
        "user_id": "u1",
        "event_type": "view",
        "item_id": "i1",
        "price": 10.0,
        "session_id": "s1",
        "device": "web",
        "ts": "2026-11-24T10:15:00+00:00",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_landing(
    landing: Path, hour: int, name: str, lines: list, encoding_errors: bytes = b"", day: str = "2026-11-24"
) -> Path:
    """Write JSON Lines (dicts or raw strings) into the landing hour ``day``/``hour``; return the file."""
    folder = landing / "events" / f"date={day}" / f"hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    body = "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines)
    path = folder / name
    path.write_bytes(body.encode("utf-8") + b"\n" + encoding_errors)
    return path
