"""Every NPS_* environment setting the code reads is in the README's one table of settings."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE = ("nps", "plugins", "nlp", "dags")


def test_every_setting_the_code_reads_is_documented():
    names: set[str] = set()
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'](NPS_[A-Z][A-Z0-9_]*)[\"']", path.read_text()))
    names -= {"NPS_CATEGORIES", "NPS_BY_QUARTER"}  # SQL constants in nps/summary.py, not settings
    readme = REPO.joinpath("README.md").read_text()
    table = readme[readme.index("### Environment settings"):readme.index("## Layout")]
    assert len(names) > 20
    assert sorted(n for n in names if n not in table) == []
