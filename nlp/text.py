"""Text helpers shared by the loader and the theme engine.

* :func:`normalise` — the canonical form a comment is hashed and embedded in
  (lowercase, white space collapsed, stripped).
* :func:`text_hash` — sha256 hex of the normalised text; the key of ``nlp.embeddings``.
* :func:`is_empty` — comments that are no answer at all ("", "-", "asdf").
* :func:`is_content_free` — empty, or a no-feedback answer ("n/a", "nothing", "all good"; nlp/no_feedback.py).
* :func:`redact_pii` — replaces e-mail addresses with ``[email]`` and phone numbers with
  ``[phone]``. The loader applies it before ``raw.survey_responses`` is written.
* :func:`strip_markup` — drops links and @handles and decodes HTML entities, so "https://t.co/x",
  "@united" or "&amp;" never become theme keywords or pull comments together.
* :func:`prepare` — the text the theme engine hashes, embeds and labels: all of the above.

Pure standard library: importing this module is cheap (the loader and Airflow DAG files use it).
"""

from __future__ import annotations

import hashlib
import html
import re

__all__ = [
    "EMAIL_TOKEN",
    "EMPTY",
    "PHONE_TOKEN",
    "is_content_free",
    "is_empty",
    "normalise",
    "prepare",
    "redact_pii",
    "strip_markup",
    "text_hash",
]

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"

_WS_RE = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """Lowercase, collapse every run of white space to one space, strip the ends."""
    if text is None:
        return ""
    return _WS_RE.sub(" ", str(text)).strip().lower()


def text_hash(text: str | None) -> str:
    """sha256 hex digest of :func:`normalise` (text)."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


_URL_RE = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
# @handles (social posts, chat transcripts): who was addressed is not what the comment is about.
# E-mail addresses are already [email] by then (redact_pii runs first).
_MENTION_RE = re.compile(r"(?<![\w@.])@[A-Za-z0-9_]{1,30}\b")


def strip_markup(text: str | None) -> str:
    """``text`` without links (``http(s)://...``, ``www....``) and @handles, HTML entities decoded."""
    if not text:
        return ""
    text = str(text)
    if "&" in text:
        text = html.unescape(text)
    if "://" in text or "www." in text.lower():
        text = _URL_RE.sub(" ", text)
    if "@" in text:
        text = _MENTION_RE.sub(" ", text)
    return text


# --------------------------------------------------------------------------------------------
# Comments without content: empty, and no-feedback answers
# --------------------------------------------------------------------------------------------

#: Normalised comments (after stripping punctuation at the ends) that are no answer at all: blanks,
#: keyboard mashing, null tokens, a lone redaction token. No-feedback answers ("nothing", "n/a",
#: "all good") are a different thing: an answer that says there is nothing to say
#: (:func:`nlp.no_feedback.is_no_feedback`); they get a built-in theme, empty comments none.
EMPTY: frozenset[str] = frozenset(
    {"", "x", "xx", "xxx", "xxxx", "test", "testing", "asdf", "asd", "qwerty", "abc", "aaa", "nan", "null",
     "undefined", "[email]", "[phone]", "lorem ipsum", "."}
)
# Characters stripped from both ends before the lookup ("N/A." -> "n/a", "Nothing!" -> "nothing").
_EDGE_PUNCT = " \t\r\n.,;:!?-_*'\"`~()[]{}<>"


def is_empty(text: str | None) -> bool:
    """True when the comment is no answer at all: nothing, punctuation only, no letter or digit, or
    one of the :data:`EMPTY` tokens."""
    norm = normalise(text)
    if norm in EMPTY or norm.strip(_EDGE_PUNCT) in EMPTY:
        return True
    return not any(ch.isalnum() for ch in norm)


def is_content_free(text: str | None) -> bool:
    """True when the comment carries nothing to theme by content: empty (:func:`is_empty`) or a
    no-feedback answer (:func:`nlp.no_feedback.is_no_feedback`: "nothing", "n/a", "all good", "rien").
    "nothing works" or "no support on weekends" carry content, and are not."""
    from nlp.no_feedback import is_no_feedback

    return is_empty(text) or is_no_feedback(text)


# --------------------------------------------------------------------------------------------
# PII redaction
# --------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)

# Phone candidates: an optional "+CC" international prefix, then digit groups separated by a
# single space, dot, hyphen or parentheses. Which candidates really are phone numbers is
# decided in _phone_repl (digit count, separators), so ordinary numbers survive.
_PHONE_CANDIDATE_RE = re.compile(
    r"""
    (?<![\w.$€£/+-])                 # not glued to a word, decimal, price, path or sign
    (?:
        \+\d{1,3}[\s.-]?             # +CC international prefix
        (?:\(\d{1,4}\)[\s.-]?)?      # +44 (0)20 ... / +1 (415) ...
        \d{1,8}(?:[\s.-]\d{1,8}){1,5}
      |
        \+\d{8,15}                   # +4915112345678
      |
        \(\d{2,5}\)[\s.-]?\d{2,5}(?:[\s.-]\d{2,5}){0,3}   # (415) 555-0132
      |
        \d{2,5}(?:[\s.-]\d{2,8}){1,4}                       # 415-555-0132, 020 7946 0958, 07700 900123
      |
        \d{10,13}                                           # 4155550132
    )
    (?![\w$€£%]|[.,-]\d)             # not followed by a word, currency/percent or more digits
    """,
    re.VERBOSE,
)

_DATE_LIKE_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")


def _phone_repl(match: re.Match[str]) -> str:
    cand = match.group(0)
    digits = sum(ch.isdigit() for ch in cand)
    if cand.startswith("+"):
        # International: +CC plus at least 6 more digits ("+49 30 123456", "+1 415 555 0132").
        return PHONE_TOKEN if 8 <= digits <= 15 else cand
    if _DATE_LIKE_RE.match(cand):
        return cand  # 2025-01-03, 03/01/2025, 3.1.2025
    groups = re.split(r"[\s.()-]+", cand.strip("()"))
    groups = [g for g in groups if g]
    if cand.startswith("00") and 10 <= digits <= 17:
        return PHONE_TOKEN  # 0044 20 7946 0958: the international call prefix instead of "+"
    # a national trunk prefix: 020 7946 0958, 07700 900123, 06 12 34 56 78, 030 1234567
    trunk = cand.startswith("0") and not cand.startswith("00")
    if any(len(g) > 5 for g in groups[1:]) and not trunk:
        return cand  # "2024 000123": long digit runs without a trunk prefix are references
    if not 10 <= digits <= 13:
        return cand  # "3.2.1", "2 weeks", "10 20 30", "1200" are not phone numbers
    seps = {c for c in cand if c in " .-"}
    if cand.startswith("("):
        return PHONE_TOKEN
    if len(seps) > 1 and "(" not in cand:
        return cand  # mixed separators like "10 000-20.000" look like ranges, not phones
    if len(groups) == 1:
        return PHONE_TOKEN  # 4155550132
    if len(groups[-1]) < 4 and not trunk:
        return cand  # "100 200 300 400" - national numbers end in a group of 4+ digits
    if len(groups) >= 3 and len({len(g) for g in groups}) == 1 and not trunk:
        return cand  # "1200 1300 1400" - a list of equal-width numbers
    return PHONE_TOKEN


def redact_pii(text: str | None) -> str | None:
    """Replace e-mail addresses with ``[email]`` and phone numbers with ``[phone]``.

    Phone numbers: North American (``(415) 555-0132``, ``415-555-0132``, ``415.555.0132``,
    ``4155550132``) and international with a ``+`` prefix (``+44 20 7946 0958``,
    ``+49 30 123456``, ``+1 415 555 0132``, ``0044 20 7946 0958``); national numbers with 10-13
    digits in groups (``020 7946 0958``, ``07700 900123``, ``06 12 34 56 78``).
    Ordinary numbers are kept: ``2 weeks``, ``$1200``, ``10x``, ``2025``, ``3.2.1``, ``50%``,
    dates, times, decimals.

    ``None`` stays ``None``; everything else is returned as a string.
    """
    if text is None:
        return None
    text = str(text)
    if not text:
        return text
    if "@" in text:
        text = _EMAIL_RE.sub(EMAIL_TOKEN, text)
    if sum(map(str.isdigit, text)) >= 7:
        text = _PHONE_CANDIDATE_RE.sub(_phone_repl, text)
    return text


def prepare(comment: str | None) -> str:
    """The text that is hashed, embedded and labelled: PII redacted, links dropped, normalised."""
    return normalise(strip_markup(redact_pii(comment)))
