"""The repository stands on its own: no file refers to material outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# a sibling folder of the clone (../shared, ../data) or a path climbing out of it from code
OUTSIDE = re.compile(r"\.\./(?:shared|data)\b|parent\.parent\.parent|ROOT\.parent\b")


def test_no_tracked_file_points_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, files.decode().split("\0")):
        path = REPO / name
        if (name.startswith("bench/data/") or path.suffix in {".csv", ".json"} or not path.is_file()
                or path == Path(__file__).resolve()):  # this file names the patterns it looks for
            continue  # shipped data sets and seeds are data, not references
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []
