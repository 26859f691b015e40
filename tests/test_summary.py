"""The run summary's lines that are pure formatting (the figures come from marts checked elsewhere)."""

from __future__ import annotations

from datetime import date

from nps.summary import _resolved_line

Q2, Q3 = date(2025, 4, 1), date(2025, 7, 1)


def test_resolved_themes_are_listed_with_their_sub_themes_counted_not_listed() -> None:
    rows = [
        ("theme", "app / mobile / crashes", Q2, ""),
        *[("subtheme", f"app crash {k}", Q2, "app / mobile / crashes") for k in range(15)],
        ("subtheme", "felt rushed / onboarding", Q3, "onboarding / setup"),  # its theme is still there
        ("subtheme", "jorge solved", Q3, "support / customer"),
    ]
    line = _resolved_line(rows)
    assert line == ("  resolved: app / mobile / crashes (gone in 2025-Q2, with 15 sub-themes); "
                    "2 sub-themes of themes still present (marts.theme_recurrence, status 'resolved')")
    assert "app crash 3" not in line  # one line, however many sub-themes went


def test_a_sub_theme_gone_in_another_quarter_than_its_theme_is_not_counted_with_it() -> None:
    rows = [("theme", "pricing", Q3, ""), ("subtheme", "per-seat pricing", Q2, "pricing")]
    assert _resolved_line(rows) == ("  resolved: pricing (gone in 2025-Q3); 1 sub-theme of themes still present"
                                    " (marts.theme_recurrence, status 'resolved')")
    assert _resolved_line([]) == ""
