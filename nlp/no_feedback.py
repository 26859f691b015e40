"""No-feedback answers: comments that say there is nothing to say ("Nothing", "No", "N/A", "All good",
"Can't think of anything", "RAS", "rien", "nada", "nichts", "k.A.").

Real short-answer surveys get many of them (a tenth to a fifth of the answers to "what could we do
better?"), and people who label such surveys file them as a theme of their own ("couldn't be
improved"). The theme engine gives them one built-in theme, ``no specific feedback``, instead of
leaving them unthemed or letting them form clusters: nothing to act on, but their share per
segment and quarter is a figure BI users read.

The rule is a small grammar over the normalised answer (lowercase, accents and punctuation dropped,
apostrophes removed): optional *lead* words ("honestly", "um", "no,"), one or more *core* phrases
("nothing", "nothing to improve", "can't think of anything", "all good", "rien a signaler"), then
optional *tail* words ("really", "at the moment", "thanks"). The whole answer must be consumed, so an
answer that carries content is never caught: "nothing works", "no support at all", "nothing to
improve but the parking", "not sure it is worth the price" stay ordinary comments.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["is_no_feedback", "no_feedback_key"]

# Each phrase is written normalised: lowercase, no accents, no punctuation, no apostrophes, single
# spaces. "(a|b)" alternatives and "x?" optional words are regular expressions.
_CORE = r"""
nothing | none | no | nope | nah | nil | nada | zilch | zero | na | n a | ok | okay | k | fine | meh
| not applicable | not really | not much | not at all | not a thing | no thing
| nothing (really|much|else|more|further|additional|special|specific|in particular|at all|of note|of importance)
| (nothing|none|no|not) (i|we) can think of
| nothing (i|we) would (change|improve|add)
| nothing (to|i (can|could|would|want to|wish to|need to)) (add|say|report|mention|suggest|comment|comment on|complain
  about|change|improve|improve on|fault|declare|share)
| nothing (needs|need) (improving|improvement|changing|to (be )?(change|changed|improve|improved))
| nothing (comes|springs) to mind
| nothing (that )?(i|we) can (think of|see)
| (i )?(cant|cannot|can not|couldnt|could not) think of (anything|any|much|something|one|any (improvements|suggestions))
| (i )?(cant|cannot|can not|couldnt|could not) (fault|fault it|fault anything|fault them|fault you|complain)
| (it )?(cant|cannot|can not|couldnt|could not) be (improved|better|faulted)
| (i )?(have )?(no|nothing) (to )?(complaints?|suggestions?|comments?|remarks?|issues?|problems?|feedback|
  improvements?|improvements? needed|changes?|concerns?|further comments?|other comments?|additional comments?|
  answer|reason|opinion|idea|ideas|thoughts|objections?)
| no (improvement|improvements|changes) (needed|necessary|required)
| none (needed|required|necessary|really|at all)
| (its )?all (good|fine|ok|okay|great|perfect|well|sorted)
| (everything|all) (is|was|s) (good|fine|ok|okay|great|perfect|in order)
| (its|thats|that is|it is) (fine|ok|okay|good) (as it is|as is)?
| (fine|happy|ok|good) as (it is|is)
| keep (it|doing) (as it is|what you are doing|what youre doing)
| faultless | flawless | perfect as is | perfect as it is | couldnt be better | could not be better
| (i )?(dont|do not) know | dunno | idk | no idea | not sure | unsure | no opinion | no comment | no comments
| (see|as) above | same as above | as before | as previously stated
| thats (all|it) | that is (all|it)
| no thanks | no thank you
| rien | ras | r a s | aucun | aucune | neant | non | nan
| pas d(e |)(commentaire|commentaires|remarque|remarques|avis|idee|suggestion|suggestions|probleme|reclamation)
| rien (a|de) (signaler|dire|ajouter|redire|particulier|special|plus|a dire|a ajouter|a signaler|ameliorer|changer)
| rien de (particulier|special|plus)
| aucun(e)? (commentaire|remarque|suggestion|idee|avis|probleme|reclamation|amelioration)
| sans (commentaire|avis)
| (je )?(ne )?sais pas | je ne sais pas | tout (est|etait|va) (bien|parfait|ok|nickel) | tout (bien|ok|parfait|nickel)
| nichts | nein | nix | nee | no | keine | keins | kein kommentar
| keine (angabe|angaben|anmerkung|anmerkungen|kommentare|ahnung|idee|vorschlage|verbesserungen|beschwerden)
| k a | ka | weiss nicht | weis nicht | ich weiss (es )?nicht | nichts (weiter|zu (sagen|erganzen|verbessern|bemangeln|
  beanstanden|melden))
| alles (gut|ok|okay|bestens|in ordnung|prima|super)
| nada | ninguno | ninguna | ningun comentario | sin comentarios? | no se | nada que (agregar|anadir|decir|mejorar|
  comentar|destacar|senalar)
| todo (bien|ok|perfecto|correcto)
| niente | nulla | nessuno | nessuna | nessun commento | non so | niente da (aggiungere|segnalare|dire|migliorare)
| tutto (ok|bene|perfetto|a posto)
| nenhum | nenhuma | nao | nao sei | nada a (declarar|acrescentar|dizer) | tudo (bem|ok|certo|otimo) | sem comentarios?
| niets | niks | geen | nee | geen (opmerkingen|opmerking|commentaar|idee) | weet (ik )?niet
| alles (goed|prima|in orde)
"""
_LEAD = r"""
honestly | really | um+ | uh+ | er+m? | hm+ | well | so | oh | ah | sorry | no | nope | nah | nothing | ok | okay
| i think | i guess | to be honest | tbh | at the moment | at present | currently | right now | for now | so far
| as of now | not really | euh | bah | ben | alors | hmm | naja | also | pues | bueno | mah | beh
"""
_TAIL = r"""
really | at all | thanks | thank you | thx | ty | cheers | merci | danke | gracias | grazie | obrigad[oa] | bedankt
| at the moment | at this time | at present | currently | right now | for now | so far | as of now | yet | now
| for me | for us | from me | from us | here | else | more | further | much | really | sorry | again | to add
| to say | to report | to mention | in particular | specifically | i can think of | that i can think of
| i can see | to improve | to change | comes to mind | springs to mind | all good | all fine | everything good
| keep it up | keep up the good work | well done | great job | good job | pour le moment | pour l instant
| merci beaucoup | danke schon | muchas gracias | por ahora | per ora | im moment | zurzeit | momentan
| moment | instant | :\) | ok | okay | fine | no | nope | nothing | none
"""


def _alt(block: str) -> str:
    """``a | b c | (d|e)`` -> a non-capturing group; "|" inside a group may sit at a line break."""
    parts = (re.sub(r"\s*\|\s*", "|", " ".join(p.split())) for p in block.replace("\n", " ").split(" | "))
    return "(?:" + "|".join(p.replace("(", "(?:") for p in parts if p) + ")"


_RULE = re.compile(rf"^(?:{_alt(_LEAD)} )*{_alt(_CORE)}(?: (?:{_alt(_CORE)}|{_alt(_TAIL)}))*$")
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_NON_WORD = re.compile(r"[^\w]+")


def no_feedback_key(text: str | None) -> str:
    """The form the rule reads: lowercase, accents and apostrophes dropped, punctuation as spaces."""
    if not text:
        return ""
    folded = str(text).lower()
    if not folded.isascii():  # accents: ASCII has none, and most answers are ASCII (10x faster)
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).replace("ß", "ss")
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).replace("_", " ").split())


def is_no_feedback(text: str | None) -> bool:
    """True for an answer that says there is nothing to say (see the module docstring); False for
    empty text (that is no answer at all) and for any answer with content."""
    key = no_feedback_key(text)
    if not key or len(key) > 80:  # a long answer is never only "nothing to say"
        return False
    return _RULE.match(key) is not None
