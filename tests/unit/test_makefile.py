"""`make help` lists every target: each one has its `## target: line` above it."""

from __future__ import annotations

import re

from tests.support import ROOT


def test_every_make_target_has_a_help_line():
    lines = (ROOT / "Makefile").read_text().splitlines()
    targets = [m.group(1) for line in lines if (m := re.match(r"^([a-z][a-z-]*):", line))]
    documented = {m.group(1) for line in lines if (m := re.match(r"^## ([a-z][a-z-]*): \S", line))}
    assert targets
    assert [t for t in targets if t not in documented] == []
    assert "help" in targets
