"""``nps themes fit INPUT.csv --text-column COL --out OUT.csv``: the theme engine on a user's CSV.

Exports come in many shapes, so the reader is forgiving where it is safe and loud where it is not:
the delimiter is sniffed (``,`` ``;`` tab ``|``), a UTF-8 byte-order mark is dropped, a Qualtrics
export's two extra header rows (question text, ImportId JSON) are recognised and skipped, and a file
that is not valid in the declared encoding stops with the byte offset and a hint instead of a
traceback. The ``nps`` CLI (nps/cli.py) parses the arguments and calls :func:`themes_fit`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

__all__ = ["read_input", "themes_fit"]

OUTPUT_COLUMNS = ("theme_id", "theme_label", "confidence")
_DELIMITERS = ",;\t|"


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","  # one column, or nothing to go by: a plain CSV


def _is_qualtrics_import_row(row: list[str]) -> bool:
    # Qualtrics CSV exports: row 2 is question text, row 3 holds {"ImportId":"..."} per column
    cells = [c for c in row if c.strip()]
    return bool(cells) and sum('"importid"' in c.lower() for c in cells) >= len(cells) / 2


def read_input(
    path: str | Path,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    header_rows: int | None = None,
) -> Any:
    """The CSV at ``path`` as a DataFrame of strings (empty cells stay ``""``).

    ``delimiter=None`` sniffs it; ``header_rows=None`` is 3 for a Qualtrics export, else 1.
    Raises ValueError (with what to change) for an undecodable file or an empty one.
    """
    import pandas as pd

    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not valid {encoding} (byte {exc.start}: {data[exc.start:exc.start + 4]!r}); "
            "pass --encoding, e.g. --encoding cp1252 for an Excel export on Windows"
        ) from None
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if not text.strip():
        raise ValueError(f"{path} is empty")
    sep = delimiter or _sniff_delimiter(text[:64_000])
    if header_rows is None:
        first = list(csv.reader(io.StringIO(text[:64_000]), delimiter=sep))[:3]
        header_rows = 3 if len(first) == 3 and _is_qualtrics_import_row(first[2]) else 1
    try:
        return pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
            skiprows=range(1, header_rows), skip_blank_lines=True,
        )
    except (pd.errors.ParserError, csv.Error) as exc:
        raise ValueError(f"{path} is not a readable CSV with delimiter {sep!r}: {exc}") from None


def themes_fit(
    input_path: str | Path,
    text_column: str,
    out_path: str | Path,
    model: str | None = None,
    *,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    header_rows: int | None = None,
) -> int:
    """Theme the ``text_column`` of a CSV; write the input rows + theme_id, theme_label, confidence.

    Returns the number of themes found. Raises ValueError when the file cannot be read or the
    column is missing (the message lists the columns there are).
    """
    import pandas as pd

    from nlp.pipeline import ThemeConfig, ThemeEngine

    df = read_input(input_path, encoding=encoding, delimiter=delimiter, header_rows=header_rows)
    if text_column not in df.columns:
        raise ValueError(f"column {text_column!r} not in {input_path}; columns are: {', '.join(map(str, df.columns))}")
    cfg = ThemeConfig() if model is None else ThemeConfig(model=model)
    engine = ThemeEngine(cfg)
    res = engine.fit_transform(df[text_column].tolist())
    out = df.drop(columns=[c for c in OUTPUT_COLUMNS if c in df.columns])
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
