"""A fixed set of hostile landing files: lines that must be quarantined with a given reason,
lines that must pass, and files that cannot be read (or only in part).

``write_corpus`` writes them into one landing hour and returns what each should become, so the
cleaning tests and the daily-DAG test assert against the same expectations.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class Corpus:
    # (line bytes, expected reason or None for clean) of hostile.jsonl, in file order.
    lines: list[tuple[bytes, str | None]]
    # file name -> expected reason in push.quarantined_files.
    files: dict[str, str]
    # lines the truncated gzip held before its break (its readable prefix holds fewer).
    truncated_lines: int
    folder: Path = field(default=Path())

    @property
    def line_count(self) -> int:
        return len(self.lines)


def _event(hour: datetime, n: int, users: list[str], items: list[str], **overrides) -> dict:
    event = {
        "event_id": f"hostile-{hour:%Y%m%d%H}-{n}",
        "user_id": users[n % len(users)],
        "event_type": "view",
        "item_id": items[n % len(items)],
        "session_id": "s-hostile",
        "device": "web",
        "ts": f"{hour:%Y-%m-%dT%H}:{n % 60:02d}:{n // 60 % 60:02d}Z",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def _line(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def write_corpus(landing_dir: Path, hour: datetime, users: list[str], items: list[str]) -> Corpus:
    """Write the corpus into ``hour``'s landing folder; its valid events take turns over ``users`` and ``items``."""
    folder = landing_dir / "events" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True, exist_ok=True)

    def ev(n, **overrides):
        return _event(hour, n, users, items, **overrides)

    lines: list[tuple[bytes, str | None]] = [
        (b"\xef\xbb\xbf" + _line(ev(1)), None),  # a byte-order mark before the first line
        (_line(ev(2, user_id="u\u0000x")), "control_character"),  # a NUL, escaped in valid JSON
        (_line(ev(3, user_id={"a": 1})), "wrong_type"),
        (_line(ev(4, user_id=["u1"])), "wrong_type"),
        (_line(ev(5, item_id=True)), "wrong_type"),
        (_line(ev(6, session_id=1.5)), "wrong_type"),
        (_line(ev(7, user_id="u" * 10_000)), "id_too_long"),
        (_line(ev(8, item_id="i\t1")), "control_character"),
        (_line(ev(9, event_type="search", item_id=None, query="a\u0000b")), "nul_in_text"),
        (_line(ev(10, event_type="search", item_id=None, query="q" * 5_000)), "text_too_long"),
        (_line(ev(11))[:-2] + b'\xff\xfe"}', "invalid_utf8"),  # bytes that are not UTF-8
        (_line(ev(12))[:20] + b"\x00" + _line(ev(12))[20:], "malformed_json"),  # a raw NUL byte
        (_line(ev(13, user_id=4242)), None),  # an integer id is kept as its digits
        (_line(ev(14, session_id="s-\u00fc-\U0001f600")), None),  # non-ASCII is fine
        (_line(ev(15, device="x" * 129)), "id_too_long"),
        (b'{"event_id": "hostile-dup", "user_id": "u", "user_id": {"x": 1}}', "wrong_type"),
    ]
    (folder / "hostile.jsonl").write_bytes(b"\n".join(line for line, _ in lines) + b"\n")

    (folder / "broken.parquet").write_bytes(b"this is not a parquet file at all\n")
    (folder / "not-gzip.jsonl.gz").write_bytes(_line(ev(20)) + b"\n")
    (folder / "a-folder.jsonl").mkdir(exist_ok=True)
    truncated = [_line(ev(100 + n)) for n in range(300)]
    packed = gzip.compress(b"\n".join(truncated) + b"\n")
    (folder / "cut.jsonl.gz").write_bytes(packed[: len(packed) * 2 // 3])
    files = {
        "broken.parquet": "corrupt_parquet",
        "not-gzip.jsonl.gz": "corrupt_gzip",
        "a-folder.jsonl": "not_a_file",
        "cut.jsonl.gz": "truncated_gzip",
    }
    return Corpus(lines, files, len(truncated), folder)
