"""docs/configuration.md lists every environment variable the code reads."""

from __future__ import annotations

import re

from tests.support import ROOT

# _env("NAME"), _env_int("NAME", ...), os.environ.get("PUSH_NAME"), os.environ["PUSH_NAME"], getenv("PUSH_NAME")
READS = re.compile(
    r'_env(?:_[a-z]+)?\(\s*"([A-Z][A-Z0-9_]+)"|(?:environ(?:\.get)?\(|environ\[|getenv\()\s*"(PUSH_[A-Z0-9_]+)"'
)


def _names_read() -> set[str]:
    names = set()
    for folder in ("jobs", "dags"):
        for path in (ROOT / folder).rglob("*.py"):
            for helper_name, full_name in READS.findall(path.read_text()):
                names.add(full_name.removeprefix("PUSH_") if full_name else helper_name)
    return names


def test_every_variable_the_code_reads_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    names = _names_read()
    assert len(names) > 50  # the scan found the settings
    missing = sorted(n for n in names if not re.search(rf"PUSH_(?:[A-Z0-9]+_)*{n}\b", documented))
    assert missing == []
