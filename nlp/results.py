"""What ``ThemeEngine.fit_transform`` returns: keywords and labels per theme of both levels with the
summary table, and the per-comment frame."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from nlp.label import ClassTfidfLabeler, representatives
from nlp.registry import ThemeRegistry

__all__ = ["comment_frame", "label_themes"]


def label_themes(labeler: ClassTfidfLabeler, reg: ThemeRegistry, E: np.ndarray, theme: np.ndarray,
                 texts: list[str], n_no_feedback: int, n_representatives: int) -> Any:
    """Keywords and labels per sub-theme (c-TF-IDF across sub-themes) and per parent (across
    parents, a parent's comments being its sub-themes'); the summary table."""
    import pandas as pd

    docs: dict[int, list[str]] = defaultdict(list)
    for j, text in enumerate(texts):
        if theme[j] >= 0:
            docs[int(theme[j])].append(text)
    subs = reg.clusterable()
    kws = labeler.keywords_two_levels(
        {t.theme_id: docs.get(t.theme_id, []) for t in subs},
        {p.theme_id: [k.theme_id for k in reg.children(p.theme_id)] for p in reg.parents() if p.kind == "discovered"})
    summary = []
    for t in [*reg.parents(), *reg.active()]:
        if t.kind == "discovered":
            t.keywords = kws.get(t.theme_id, [])
            t.label = labeler.label(t.keywords)
        if t.level == "theme":
            kids = {k.theme_id for k in reg.children(t.theme_id)}
            m = np.isin(theme, list(kids))
        else:
            m = theme == t.theme_id
        summary.append({
            "theme_id": t.theme_id, "level": t.level, "parent_theme_id": t.parent_id, "label": t.label,
            "keywords": ", ".join(t.keywords), "size": n_no_feedback if t.kind != "discovered" else int(m.sum()),
            "representatives": representatives(E[m], t.centroid, [texts[j] for j in np.flatnonzero(m)],
                                               n_representatives) if m.any() else [],
        })
    return pd.DataFrame(summary, columns=["theme_id", "level", "parent_theme_id", "label", "keywords", "size",
                                          "representatives"])

def comment_frame(reg: ThemeRegistry, kinds: list[str], idx: np.ndarray, theme: np.ndarray, conf: np.ndarray,
              no_feedback: Any) -> Any:
    """One row per input text: its sub-theme and parent (ids and labels) and confidence."""
    import pandas as pd

    n = len(kinds)
    sub = np.full(n, -1, dtype=np.int64)
    confidence = np.full(n, np.nan)
    sub[idx] = theme
    confidence[idx] = np.where(theme >= 0, conf, np.nan)
    if no_feedback is not None:
        nf = np.array([k == "no_feedback" for k in kinds], dtype=bool)
        sub[nf], confidence[nf] = no_feedback.theme_id, 1.0
    ids = pd.Series(sub).where(sub >= 0).astype("Int64")
    parent_of = {t.theme_id: t.parent_id for t in reg.themes.values()}
    label_of = {t.theme_id: t.label for t in reg.themes.values()}
    parents = ids.map(parent_of).astype("Int64")
    return pd.DataFrame({
        "theme_id": ids,
        "theme_label": ids.map(label_of).astype("string"),
        "parent_theme_id": parents,
        "parent_theme_label": parents.map(label_of).astype("string"),
        "confidence": pd.array(confidence, dtype="Float64"),
    })
