"""No-feedback answers (nlp/no_feedback.py) on realistic short survey answers, in the languages the
product meets, next to near misses that carry content; and what the engine does with both."""

from __future__ import annotations

import pytest

from nlp.no_feedback import is_no_feedback
from nlp.text import is_content_free, is_empty

NO_FEEDBACK = [
    # English, as people type them
    "Nothing", "nothing", "Nothing.", "NOTHING!!!", "No", "no.", "Nope", "nah", "None", "none really", "N/A", "n/a",
    "NA", "Nil", "Nothing really", "Nothing really, thanks!", "Not really", "nothing at all", "Nothing at the moment",
    "nothing I can think of", "Nothing comes to mind", "Can't think of anything", "cant think of anything",
    "I can't think of anything else", "Cannot think of any improvements", "nothing to add", "Nothing to improve",
    "nothing needs improving", "Nothing I would change", "No complaints", "no complaints at all", "No suggestions",
    "No comment", "No comments, thanks", "no further comments", "All good", "all good!", "It's all good",
    "Everything was fine", "Happy as it is", "Faultless", "Flawless", "Couldn't be better", "Can't fault it",
    "Could not be improved", "No improvements needed", "Don't know", "dont know", "Dunno", "idk", "Not sure",
    "As above", "see above", "That's all", "No, nothing", "Honestly nothing", "Nothing, keep it up",
    "None that I can think of", "no thank you", "ok", "Fine",
    # French, German, Spanish, Italian, Portuguese, Dutch
    "Rien", "rien.", "RAS", "R.A.S.", "ras merci", "Rien à signaler", "rien de particulier", "Rien à dire",
    "Aucun commentaire", "Aucune remarque", "Je ne sais pas", "Non", "Nichts", "nichts zu verbessern", "k.A.",
    "keine Angabe", "Keine Ahnung", "weiß nicht", "Alles gut", "Nada", "nada que agregar", "No sé", "Todo bien",
    "Niente", "niente da segnalare", "Non so", "Tutto ok", "Nada a declarar", "Não sei", "Niets", "Geen opmerkingen",
    "weet niet",
]  # fmt: skip

CONTENT = [
    "nothing works", "Nothing works properly since the update", "no support at all", "No support on weekends",
    "nothing to improve but the parking", "nothing to improve, but the app is slow", "No one called me back",
    "no response from support", "No follow up after my complaint", "none of the features work",
    "None of the staff helped", "Nothing but problems", "nothing happened after my complaint",
    "Nothing was done about my issue", "not sure it's worth the price", "don't know why it costs so much",
    "not really happy with the price", "All good except billing", "ok but expensive", "Fine but slow", "no parking",
    "no wifi in the store", "Not enough staff", "no communication", "Keep up the good work", "Good", "Great service",
    "Perfect", "Excellent staff", "Price", "waiting times", "Staff were friendly", "rien ne marche",
    "rien à signaler sauf la caisse trop lente", "nichts funktioniert", "nada funciona", "niente funziona",
]  # fmt: skip

EMPTY = ["", "   ", "-", "...", "?", "x", "asdf", "[email]"]


@pytest.mark.parametrize("text", NO_FEEDBACK)
def test_answers_that_say_there_is_nothing_to_say(text: str) -> None:
    assert is_no_feedback(text) and is_content_free(text) and not is_empty(text)


@pytest.mark.parametrize("text", CONTENT)
def test_near_misses_that_carry_content_are_not_caught(text: str) -> None:
    assert not is_no_feedback(text) and not is_content_free(text)


@pytest.mark.parametrize("text", EMPTY)
def test_empty_answers_are_not_no_feedback(text: str) -> None:
    assert is_empty(text) and not is_no_feedback(text)

