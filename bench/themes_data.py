"""Labelled comment sets for the theme benchmark, and their MiniLM embeddings (cached on disk).

* ``banking77`` — bench/data/banking77 train.csv + test.csv: 13,083 online-banking customer
  queries, 77 intents (CC BY 4.0, PolyAI; SOURCE.txt and LICENSE beside them).
* ``airline`` — the Twitter US Airline Sentiment ``Tweets.csv`` (CrowdFlower "Data for Everyone",
  Kaggle crowdflower/twitter-airline-sentiment): the negative tweets with a negative reason other
  than "Can't Tell" (7,988 tweets, 9 reasons). Not shipped: it is CC BY-NC-SA 4.0 (evaluation
  only) and holds Twitter user names. Point ``NPS_BENCH_AIRLINE_CSV`` at your copy; without it
  the set is skipped, saying so. @handles and links are stripped and HTML entities unescaped, the
  same text for both engines.
* ``clinc150`` — bench/data/clinc150 data_full.json, the in-scope train + val + test rows: 22,500
  voice-assistant queries, 150 intents in 10 domains (domains.json): a two-level set (``parents``
  = the domain; CC BY 3.0, Larson et al. 2019). The out-of-scope rows have no domain and are left
  out.
* ``demo`` / ``demo-small`` — the demo generator's comments (presets ``demo`` / ``small``) with
  their latent theme key from the generator's ground truth; comments without a theme key (empty,
  "n/a", ...) are left out, as they have no label.

Every text goes through ``ThemeEngine.prepare`` (PII redacted, normalised) — the text the engine
itself embeds — and both engines get exactly these texts and embeddings.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"


class MissingSet(RuntimeError):
    """A labelled set the repo cannot ship and the machine does not have."""


def airline_csv() -> Path:
    path = os.environ.get("NPS_BENCH_AIRLINE_CSV", "")
    if not path or not Path(path).is_file():
        raise MissingSet("airline: set NPS_BENCH_AIRLINE_CSV to the path of Tweets.csv (Twitter US Airline "
                         "Sentiment, Kaggle crowdflower/twitter-airline-sentiment; not shipped: CC BY-NC-SA 4.0)"
                         + (f"; {path} is not a file" if path else ""))
    return Path(path)
CACHE = ROOT / ".bench" / "themes"

_HANDLE_RE = re.compile(r"@\w+")
_URL_RE = re.compile(r"https?://\S+")


@dataclass
class LabelledSet:
    name: str
    texts: list[str]  # prepared (redacted, normalised) comments
    labels: list[str]
    note: str
    #: responded_at per row when the set has time (demo), for nightly splits
    times: list[pd.Timestamp] | None = None
    ids: list[str] | None = None
    #: the coarse label of each row, for sets with two label levels (clinc150: the domain)
    parents: list[str] | None = None


def _prepare(texts: list[str]) -> list[str]:
    from nlp.pipeline import ThemeEngine

    return [ThemeEngine.prepare(t) for t in texts]


def banking77() -> LabelledSet:
    d = DATA / "banking77"
    df = pd.concat([pd.read_csv(d / "train.csv"), pd.read_csv(d / "test.csv")], ignore_index=True)
    return LabelledSet("banking77", _prepare(df["text"].tolist()), df["category"].tolist(),
                       "train + test, 77 intents")


def clean_tweet(text: str) -> str:
    return " ".join(_URL_RE.sub(" ", _HANDLE_RE.sub(" ", html.unescape(text))).split())


def airline() -> LabelledSet:
    df = pd.read_csv(airline_csv())
    df = df[(df["airline_sentiment"] == "negative") & df["negativereason"].notna()
            & (df["negativereason"] != "Can't Tell")]
    texts = _prepare([clean_tweet(t) for t in df["text"]])
    return LabelledSet("airline", texts, df["negativereason"].tolist(),
                       "negative tweets without \"Can't Tell\", 9 reasons, @handles/links stripped")


def clinc150() -> LabelledSet:
    import json

    d = DATA / "clinc150"
    rows = [r for split in ("train", "val", "test") for r in json.loads((d / "data_full.json").read_text())[split]]
    domain_of = {intent: dom for dom, intents in json.loads((d / "domains.json").read_text()).items()
                 for intent in intents}
    return LabelledSet("clinc150", _prepare([t for t, _ in rows]), [i for _, i in rows],
                       "in-scope train + val + test, 150 intents in 10 domains",
                       parents=[domain_of[i] for _, i in rows])


def demo_frame(preset: str) -> pd.DataFrame:
    """The generator's responses (response_id, responded_at, comment, theme_key, ...), in memory:
    the same simulation ``nps.demo.generator.generate`` writes to file drops and _truth/."""
    from nps.demo.generator import PRESETS, _Sim

    sim = _Sim(PRESETS[preset])
    for step in (sim.accounts, sim.contacts, sim.usage, sim.surveys, sim.scores, sim.comments):
        step()
    df = sim.resp.copy()
    df["responded_at"] = pd.to_datetime(df["resp"], unit="s", utc=True)
    return df


def demo(preset: str = "demo") -> LabelledSet:
    df = demo_frame(preset)
    df = df[df["theme_key"] != ""].sort_values(["responded_at", "response_id"])
    name = "demo" if preset == "demo" else f"demo-{preset}"
    return LabelledSet(name, _prepare(df["comment"].tolist()), df["theme_key"].tolist(),
                       f"generator preset '{preset}', {df['theme_key'].nunique()} latent themes",
                       times=list(df["responded_at"]), ids=df["response_id"].tolist())


SETS = {"banking77": banking77, "airline": airline, "clinc150": clinc150, "demo": demo,
        "demo-small": lambda: demo("small")}


def available(names: list[str]) -> list[str]:
    """The sets of ``names`` this machine has; the others are named on stderr and skipped."""
    import sys

    out = []
    for name in names:
        try:
            if name == "airline":
                airline_csv()
            out.append(name)
        except MissingSet as exc:
            print(f"skipping {exc}", file=sys.stderr)
    return out


def embeddings(texts: list[str], embedder, tag: str = "") -> tuple[np.ndarray, float]:
    """MiniLM embeddings of ``texts`` (row per text), cached under .bench/themes/ by content.

    Returns (embeddings, seconds spent encoding; 0.0 when read from the cache).
    """
    import time

    uniq = list(dict.fromkeys(texts))
    key = hashlib.sha256(("\n".join(uniq) + "\x00" + embedder.key).encode()).hexdigest()[:16]
    path = CACHE / f"emb-{tag}-{key}.npy"
    seconds = 0.0
    if path.exists():
        U = np.load(path)
    else:
        t0 = time.perf_counter()
        U = embedder.encode(uniq)
        seconds = time.perf_counter() - t0
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, U)
    pos = {t: i for i, t in enumerate(uniq)}
    return U[[pos[t] for t in texts]], seconds
