"""`nps run` windows and failure reporting (the DAG runs themselves are in test_pipeline.py)."""

from __future__ import annotations

from datetime import date

import pytest

from nps import orchestrate
from nps.cli import main


@pytest.mark.parametrize(
    ("by", "start", "end", "expected"),
    [
        ("quarter", "2025-02-15", "2025-08-01",
         [("2025-02-15", "2025-04-01"), ("2025-04-01", "2025-07-01"), ("2025-07-01", "2025-08-01")]),
        ("quarter", "2024-10-01", "2025-01-01", [("2024-10-01", "2025-01-01")]),
        ("month", "2024-11-20", "2025-02-01",
         [("2024-11-20", "2024-12-01"), ("2024-12-01", "2025-01-01"), ("2025-01-01", "2025-02-01")]),
        ("day", "2024-02-28", "2024-03-02",
         [("2024-02-28", "2024-02-29"), ("2024-02-29", "2024-03-01"), ("2024-03-01", "2024-03-02")]),
        ("whole", "2024-01-01", "2025-01-01", [("2024-01-01", "2025-01-01")]),
    ],
)
def test_windows_tile_the_range(by: str, start: str, end: str, expected: list[tuple[str, str]]) -> None:
    got = list(orchestrate.windows(date.fromisoformat(start), date.fromisoformat(end), by))
    assert [(s.isoformat(), e.isoformat()) for s, e in got] == expected


def test_bad_ranges_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="not after start"):
        list(orchestrate.windows(date(2025, 2, 1), date(2025, 1, 1)))
    with pytest.raises(ValueError, match="unknown window size"):
        list(orchestrate.windows(date(2025, 1, 1), date(2025, 2, 1), "week"))
    assert main(["run", "--start", "2025-13-01", "--end", "2025-02-01"]) == 2
    assert "--start '2025-13-01' is not a date" in capsys.readouterr().err
    assert main(["run", "--start", "2025-02-01", "--end", "2025-01-01"]) == 2
    assert "not after start" in capsys.readouterr().err


def test_a_failed_window_says_how_to_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    """The second of three monthly windows fails: exit 1, the cause, and the resume command."""
    monkeypatch.setenv("NPS_WAREHOUSE_URL", db_url)
    ran: list[date] = []

    def run_window(start: date, end: date, **_: object) -> None:
        ran.append(start)
        if start == date(2025, 2, 1):
            raise orchestrate.PipelineRunFailed("nps_nightly run for [2025-02-01, 2025-03-01) ended failed")

    monkeypatch.setattr(orchestrate, "run_window", run_window)
    assert main(["run", "--start", "2025-01-01", "--end", "2025-04-01", "--by", "month"]) == 1
    err = capsys.readouterr().err
    assert ran == [date(2025, 1, 1), date(2025, 2, 1)]  # stops at the failure
    assert "ended failed" in err
    assert "nps run --start 2025-02-01 --end 2025-04-01 --by month" in err
