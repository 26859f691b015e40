"""``nps themes fit INPUT.csv --text-column COL --out OUT.csv`` (wired into the nps CLI by the lead)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "themes_fit"]


def themes_fit(
    input_path: str | Path,
    text_column: str,
    out_path: str | Path,
    model: str | None = None,
) -> int:
    """Theme the ``text_column`` of a CSV; write the input rows + theme_id, theme_label, confidence.

    Returns the number of themes found. Raises ValueError when the column is missing.
    """
    import pandas as pd

    from nlp.pipeline import ThemeConfig, ThemeEngine

    df = pd.read_csv(input_path, dtype=str, keep_default_na=False)
    if text_column not in df.columns:
        raise ValueError(f"column {text_column!r} not in {input_path}; columns are: {', '.join(map(str, df.columns))}")
    cfg = ThemeConfig() if model is None else ThemeConfig(model=model)
    engine = ThemeEngine(cfg)
    res = engine.fit_transform(df[text_column].tolist())
    out = df.drop(columns=[c for c in ("theme_id", "theme_label", "confidence") if c in df.columns])
    out = pd.concat([out.reset_index(drop=True), res.reset_index(drop=True)], axis=1)
    out["confidence"] = out["confidence"].round(4)
    out.to_csv(out_path, index=False)

    themes = engine.themes_
    n_themes = 0 if themes is None else len(themes)
    unassigned = float(res["theme_id"].isna().mean()) if len(res) else 0.0
    print(f"{len(df)} rows, {n_themes} themes, {unassigned:.1%} unassigned -> {out_path}")
    if themes is not None and n_themes:
        for row in themes.sort_values("size", ascending=False).head(15).itertuples():
            print(f"  {row.theme_id:>4}  {row.size:>6}  {row.label}")
    return n_themes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nps themes fit", description=themes_fit.__doc__)
    p.add_argument("input")
    p.add_argument("--text-column", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=None)
    a = p.parse_args(argv)
    try:
        themes_fit(a.input, a.text_column, a.out, a.model)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
