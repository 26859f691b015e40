"""``nps themes fit INPUT.csv --text-column COL --out OUT.csv``: the theme engine on a user's CSV.

Exports come in many shapes, so the reader is forgiving where it is safe and loud where it is not:
the delimiter is sniffed (``,`` ``;`` tab ``|``), a UTF-8 byte-order mark is dropped, a Qualtrics
export's two extra header rows (question text, ImportId JSON) are recognised and skipped, and a
file with bytes that are not valid in the declared encoding loses only the rows that hold them
(said, with their lines and the encodings the file does decode as; ``--encoding-errors
replace|fail``). The ``nps`` CLI (nps/cli.py) parses the arguments and calls :func:`themes_fit`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Any

__all__ = ["read_input", "themes_fit"]

OUTPUT_COLUMNS = ("theme_id", "theme_label", "parent_theme_id", "parent_theme_label", "confidence")
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


ENCODING_ERRORS = ("skip-row", "replace", "fail")
# what else an export that is not valid in its declared encoding is often written in
_LIKELY_ENCODINGS = ("utf-8-sig", "cp1252", "cp850", "latin-1")
# a byte not valid in the encoding, decoded as a private-use character (surrogates, as
# surrogateescape makes, cannot reach pandas' parser): U+F0000 + the byte
_UNDECODABLE = "[\U000F0000-\U000F00FF]"


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)  # registered for decoding only
    return "".join(chr(0xF0000 + b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("nps-mark-undecodable", _mark_undecodable)
_MAX_SKIPPED_SHARE = 0.01  # by default: a few stray bytes are skipped, a file in another encoding is not


def _encoding_hint(data: bytes, encoding: str) -> str:
    """The likely encodings that decode the whole file (latin-1 always does: the last resort)."""
    fits = []
    for candidate in _LIKELY_ENCODINGS:
        if candidate.replace("-sig", "") == encoding.lower().replace("-sig", "").replace("_", "-"):
            continue
        try:
            data.decode(candidate)
        except UnicodeDecodeError:
            continue
        fits.append(candidate)
    if not fits:
        return "no other common encoding fits either"
    return "it decodes as " + " or ".join(fits) + f" (--encoding {fits[0]}" + (
        "; latin-1 decodes anything, check the accents)" if fits == ["latin-1"] else ")")


def read_input(
    path: str | Path,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    header_rows: int | None = None,
    encoding_errors: str | None = None,
    warn: Any = None,
) -> Any:
    """The CSV at ``path`` as a DataFrame of strings (empty cells stay ``""``).

    ``delimiter=None`` sniffs it; ``header_rows=None`` is 3 for a Qualtrics export, else 1.
    Bytes not valid in ``encoding``: ``skip-row`` drops the rows holding them, saying how many and
    on which lines (to ``warn``, default stderr); ``replace`` keeps them with U+FFFD; ``fail``
    stops. The default (None) skips such rows while they are at most 1 % of the file (a few stray
    bytes) and fails beyond (the whole file is in another encoding). Raises ValueError (with what
    to change) for a file it will not read, or an empty one.
    """
    import sys

    import pandas as pd

    explicit = encoding_errors is not None
    encoding_errors = encoding_errors or "skip-row"
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"--encoding-errors must be one of {', '.join(ENCODING_ERRORS)}, got {encoding_errors!r}")
    warn = warn or (lambda message: print(message, file=sys.stderr))
    path = Path(path)
    data = path.read_bytes()
    bad_lines: list[int] = []
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        if encoding_errors == "fail":
            raise ValueError(
                f"{path} is not valid {encoding} (byte {exc.start} on line {line}: "
                f"{data[exc.start:exc.start + 4]!r}); {_encoding_hint(data, encoding)}; or --encoding-errors "
                "skip-row / replace"
            ) from None
        escaped = data.decode(encoding, errors="nps-mark-undecodable")
        bad_lines = [n for n, part in enumerate(escaped.split("\n"), start=1) if re.search(_UNDECODABLE, part)]
        text = escaped if encoding_errors == "skip-row" else data.decode(encoding, errors="replace")
        hint = _encoding_hint(data, encoding)
        shown = ", ".join(map(str, bad_lines[:20])) + (" ..." if len(bad_lines) > 20 else "")
        if encoding_errors == "replace":
            warn(f"{path}: bytes that are not valid {encoding} on {len(bad_lines)} line(s) ({shown}) replaced "
                 f"by U+FFFD; {hint}")
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if not text.strip():
        raise ValueError(f"{path} is empty")
    sep = delimiter or _sniff_delimiter(text[:64_000])
    if header_rows is None:
        first = list(csv.reader(io.StringIO(text[:64_000]), delimiter=sep))[:3]
        header_rows = 3 if len(first) == 3 and _is_qualtrics_import_row(first[2]) else 1
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
            skiprows=range(1, header_rows), skip_blank_lines=True,
        )
    except (pd.errors.ParserError, csv.Error) as exc:
        raise ValueError(f"{path} is not a readable CSV with delimiter {sep!r}: {exc}") from None
    if encoding_errors == "skip-row" and bad_lines:
        dirty = frame.apply(lambda col: col.str.contains(_UNDECODABLE, regex=True, na=False)).any(axis=1)
        if not explicit and dirty.mean() > _MAX_SKIPPED_SHARE:
            raise ValueError(
                f"{path}: {int(dirty.sum())} of {len(frame)} rows hold bytes that are not valid {encoding} "
                f"(first on line {bad_lines[0]}): the file is in another encoding; {hint}; "
                "or --encoding-errors skip-row / replace to read it anyway"
            )
        frame = frame[~dirty].reset_index(drop=True)
        warn(f"{path}: skipped {int(dirty.sum())} row(s) with bytes that are not valid {encoding}, on line(s) "
             f"{shown}; {hint}; --encoding-errors replace keeps them")
    return frame


def themes_fit(
    input_path: str | Path,
    text_column: str,
    out_path: str | Path,
    model: str | None = None,
    *,
    encoding: str = "utf-8-sig",
    delimiter: str | None = None,
    header_rows: int | None = None,
    encoding_errors: str | None = None,
) -> int:
    """Theme the ``text_column`` of a CSV; write the input rows + theme_id, theme_label (the sub-theme),
    parent_theme_id, parent_theme_label and confidence.

    Returns the number of sub-themes found. Raises ValueError when the file cannot be read or the
    column is missing (the message lists the columns there are).
    """
    import pandas as pd

    from nlp.pipeline import ThemeConfig, ThemeEngine

    df = read_input(input_path, encoding=encoding, delimiter=delimiter, header_rows=header_rows,
                    encoding_errors=encoding_errors)
    if text_column not in df.columns:
        raise ValueError(f"column {text_column!r} not in {input_path}; columns are: {', '.join(map(str, df.columns))}")
    cfg = ThemeConfig() if model is None else ThemeConfig(model=model)
    engine = ThemeEngine(cfg)
    res = engine.fit_transform(df[text_column].tolist())
    out = df.drop(columns=[c for c in OUTPUT_COLUMNS if c in df.columns])
    out = pd.concat([out.reset_index(drop=True), res.reset_index(drop=True)], axis=1)
    out["confidence"] = out["confidence"].round(4)
    out.to_csv(out_path, index=False)
    return _print_summary(engine.themes_, res, len(df), out_path)


def _print_summary(themes: Any, res: Any, rows: int, out_path: str | Path) -> int:
    """Themes by size with their sub-themes under them; the number of sub-themes."""
    if themes is None or not len(themes):
        print(f"{rows} rows, 0 themes, {float(res['theme_id'].isna().mean()) if len(res) else 0:.1%} unassigned "
              f"-> {out_path}")
        return 0
    subs, parents = themes[themes["level"] == "subtheme"], themes[themes["level"] == "theme"]
    empty = res["theme_id"].isna()
    print(f"{rows} rows, {len(parents)} themes with {len(subs)} sub-themes, {float(empty.mean()):.1%} unassigned "
          f"-> {out_path}")
    for parent in parents.sort_values("size", ascending=False).head(15).itertuples():
        print(f"  {parent.theme_id:>4}  {parent.size:>6}  {parent.label}")
        kids = subs[subs["parent_theme_id"] == parent.theme_id].sort_values("size", ascending=False)
        if len(kids) < 2:
            continue  # a parent of one sub-theme: the same comments, said once
        for kid in kids.head(5).itertuples():
            print(f"        {kid.theme_id:>4}  {kid.size:>6}  {kid.label}")
        if len(kids) > 5:
            print(f"        ... {len(kids) - 5} more sub-themes")
    return len(subs)
