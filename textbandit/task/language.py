"""The language of the default task: a vocabulary in categories and a grammar.

Text is lowercase, with words and punctuation separated by single spaces
(``"today , the very big dog runs quickly in the park ."``). The grammar is small enough to
be recognised exactly by :func:`parse_sentence`, which the gold labeler uses to judge fluency:

```
S     -> [TIME ,] NP VP .  |  ITEM , ITEM ... and ITEM .      (a list: one category)
NP    -> DET [ADJP] NOUN  |  NAME
ADJP  -> [very] ADJ
VP    -> VI [ADV] [PP]  |  VT NP [ADV] [PP]  |  is ADJP [PP]  |  is PP
PP    -> PREP the PLACE
```

``NOUN`` is any animal, person, food or object; list items are nouns, places or colors of one
category. :func:`sentence` and :func:`text` generate from the same grammar with the numpy
generator they are given, so the corpus is reproducible from a seed.
"""

from __future__ import annotations

import numpy as np

ANIMALS = (
    "cat dog bird fish horse cow pig sheep goat duck mouse rabbit fox wolf bear lion "
    "tiger frog snake owl deer monkey zebra whale shark bee ant crab goose seal"
).split()
PEOPLE = (
    "teacher doctor farmer baker driver nurse singer painter pilot cook king queen "
    "girl boy child man woman friend student artist"
).split()
NAMES = "anna tom lucy sam mia ben emma leo nina max zoe paul ella jack rosa hugo".split()
FOODS = (
    "apple bread cake cheese rice soup egg banana pear orange grape lemon carrot "
    "potato tomato cookie pie pizza honey milk tea juice candy corn bean melon plum "
    "peach nut salad"
).split()
OBJECTS = (
    "ball book box chair table cup hat kite lamp bag bell boat car bike clock coin "
    "door drum key map pen phone ring rope shoe sock spoon toy train window"
).split()
PLACES = (
    "park house garden forest river school city farm beach lake hill field town "
    "kitchen market shop road village island cave barn zoo street yard valley"
).split()
COLORS = "red blue green yellow black white brown pink purple gray orange gold".split()
SIZES = "big small tall short long tiny huge little".split()
QUALITIES = (
    "happy sad old new quiet loud fast slow warm cold nice clean dirty kind funny soft hard bright dark sweet"
).split()
VERBS_INTRANS = (
    "runs walks sleeps jumps sings swims dances plays sits waits laughs cries "
    "smiles works reads rests hides climbs flies falls"
).split()
VERBS_TRANS = (
    "sees likes eats finds takes holds wants makes buys sells brings carries "
    "visits watches helps loves needs paints cleans opens"
).split()
ADVERBS = "quickly slowly quietly happily sadly often again together alone early late".split()
TIMES = "today yesterday tomorrow later sometimes then".split()
PREPS = "in near under behind at by".split()
DETS = "the a my this".split()
FUNCTION_WORDS = ["is", "very", "and", ","]

CATEGORIES: dict[str, list[str]] = {
    "animals": ANIMALS,
    "people": PEOPLE,
    "names": NAMES,
    "food": FOODS,
    "objects": OBJECTS,
    "places": PLACES,
    "colors": COLORS,
    "sizes": SIZES,
    "qualities": QUALITIES,
    "verbs": VERBS_INTRANS + VERBS_TRANS,
    "adverbs": ADVERBS,
    "times": TIMES,
}
"""Every content word by category (``colors`` also serve as adjectives, ``orange`` is both
a food and a color)."""

NOUNS = ANIMALS + PEOPLE + FOODS + OBJECTS
ADJECTIVES = COLORS + SIZES + QUALITIES
LIST_CATEGORIES = ("animals", "food", "objects", "places", "colors")
TOPICS = ("animals", "people", "food", "objects", "places")

# Words used only by instructions and prompts, never in responses.
INSTRUCTION_WORDS = (
    "instruction response : write about sentences sentence use exactly "
    "the word words without do not at most start end your answer with list "
    "what color where is ? . , 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 "
    "a an of include name time place adverb"
).split()

RESPONSE_VOCAB: frozenset[str] = frozenset(w for ws in CATEGORIES.values() for w in ws) | frozenset(
    PREPS + DETS + FUNCTION_WORDS + ["."]
)
"""Every token a good response may contain; anything else is an invented word."""

_ROLE: dict[str, set[str]] = {}
for _role, _words in {
    "noun": NOUNS,
    "name": NAMES,
    "adj": ADJECTIVES,
    "vi": VERBS_INTRANS,
    "vt": VERBS_TRANS,
    "adv": ADVERBS,
    "time": TIMES,
    "prep": PREPS,
    "det": DETS,
    "place": PLACES,
}.items():
    for _w in _words:
        _ROLE.setdefault(_w, set()).add(_role)


def has_role(word: str, role: str) -> bool:
    return role in _ROLE.get(word, ())


def category_of(word: str, candidates=LIST_CATEGORIES) -> list[str]:
    """The categories among ``candidates`` that contain ``word``."""
    return [c for c in candidates if word in CATEGORIES[c]]


# ---------------------------------------------------------------- recognition
def _np_parts(toks: list[str], i: int) -> tuple[str, list[str], int] | None:
    """(head noun, its adjective if any, index after) of the NP starting at i, or None."""
    if i < len(toks) and has_role(toks[i], "name"):
        return toks[i], [], i + 1
    if i >= len(toks) or not has_role(toks[i], "det"):
        return None
    j = _adjp(toks, i + 1)  # "the orange cat" and "the orange": orange is an adj and a noun
    if 0 < j < len(toks) and has_role(toks[j], "noun"):
        return toks[j], [toks[j - 1]], j + 1
    return (toks[i + 1], [], i + 2) if i + 1 < len(toks) and has_role(toks[i + 1], "noun") else None


def _np(toks: list[str], i: int) -> int:
    """Index after an NP starting at i, or -1."""
    parts = _np_parts(toks, i)
    return parts[2] if parts else -1


def _adjp(toks: list[str], i: int) -> int:
    if i < len(toks) and toks[i] == "very":
        i += 1
    return i + 1 if i < len(toks) and has_role(toks[i], "adj") else -1


def _pp(toks: list[str], i: int) -> int:
    if i + 2 < len(toks) + 0 and has_role(toks[i], "prep") and toks[i + 1] == "the" and has_role(toks[i + 2], "place"):
        return i + 3
    return -1


def _vp(toks: list[str], i: int) -> bool:
    """Whether toks[i:] is exactly one VP."""
    n = len(toks)
    if i >= n:
        return False
    w = toks[i]
    ends = []
    if w == "is":
        j = _adjp(toks, i + 1)
        if j > 0:
            ends += [j, _pp(toks, j)]
        ends.append(_pp(toks, i + 1))
    if has_role(w, "vi"):
        ends.append(i + 1)
    if has_role(w, "vt"):
        ends.append(_np(toks, i + 1))
    for j in ends:
        if j < 0:
            continue
        if j < n and has_role(toks[j], "adv") and w != "is":
            j += 1
        k = _pp(toks, j)
        if j == n or k == n:
            return True
    return False


def _is_list(toks: list[str]) -> bool:
    if len(toks) < 3 or toks[-2] != "and":
        return False
    items = toks[0:-2:2] + [toks[-1]]
    seps = toks[1:-2:2]
    if len(toks) % 2 == 0 or any(s != "," for s in seps):
        return False
    common = set(category_of(items[0]))
    for w in items[1:]:
        common &= set(category_of(w))
    return bool(common) and len(set(items)) == len(items)


def parse_sentence(words: list[str]) -> bool:
    """Whether ``words`` (one sentence, without its final ``.``) is grammatical."""
    toks = list(words)
    if _is_list(toks):
        return True
    toks = _without_time(toks)
    j = _np(toks, 0)
    return j > 0 and _vp(toks, j)


def _without_time(toks: list[str]) -> list[str]:
    """``toks`` without a leading ``TIME ,``."""
    return toks[2:] if len(toks) >= 2 and has_role(toks[0], "time") and toks[1] == "," else toks


def split_sentences(text: str) -> tuple[list[list[str]], list[str]]:
    """Split on ``.``; returns (complete sentences, unterminated trailing words)."""
    sents, cur = [], []
    for w in text.split():
        if w == ".":
            sents.append(cur)
            cur = []
        else:
            cur.append(w)
    return sents, cur


# ---------------------------------------------------------------- sense
ANIMATE = frozenset(ANIMALS + PEOPLE + NAMES)
FEELINGS = frozenset("happy sad kind funny".split())
"""adjectives only an animate noun can be (``the happy cake`` is grammatical nonsense)"""
OBJECT_OF: dict[str, frozenset[str]] = {
    "eats": frozenset(FOODS),
    "opens": frozenset(OBJECTS),
    "helps": ANIMATE,
    "visits": ANIMATE,
}
"""transitive verbs that take only some objects; the others take any noun"""


def _fits(noun: str, adjectives: list[str]) -> bool:
    return noun in ANIMATE or not FEELINGS.intersection(adjectives)


def makes_sense(words: list[str]) -> bool:
    """Whether a grammatical sentence (:func:`parse_sentence`) also makes sense: only animate
    things (animals, people, names) act (``the cake runs`` does not) or have feelings (``the
    happy cake``), ``eats`` takes food, ``opens`` an object, ``helps`` and ``visits`` someone
    animate. Lists always make sense.

    >>> makes_sense("the dog eats a sweet cake".split()), makes_sense("the cake eats the dog".split())
    (True, False)
    """
    toks = list(words)
    if _is_list(toks):
        return True
    toks = _without_time(toks)
    subject, adjectives, j = _np_parts(toks, 0)
    if not _fits(subject, adjectives):
        return False
    verb = toks[j]
    if verb == "is":
        k = _adjp(toks, j + 1)
        return k < 0 or _fits(subject, [toks[k - 1]])
    if subject not in ANIMATE:
        return False
    obj = _np_parts(toks, j + 1) if has_role(verb, "vt") else None
    if obj:
        noun, obj_adjectives, _ = obj
        return noun in OBJECT_OF.get(verb, frozenset([noun])) and _fits(noun, obj_adjectives)
    return True


# ---------------------------------------------------------------- generation
def _pick(rng: np.random.Generator, words) -> str:
    return words[int(rng.integers(len(words)))]


def noun_phrase(
    rng: np.random.Generator, noun: str | None = None, p_adj: float = 0.4, p_very: float = 0.1
) -> list[str]:
    if noun in NAMES or (noun is None and rng.random() < 0.15):
        return [noun or _pick(rng, NAMES)]
    out = [_pick(rng, DETS)]
    if rng.random() < p_adj:
        if rng.random() < p_very:
            out.append("very")
        out.append(_pick(rng, ADJECTIVES))
    return out + [noun or _pick(rng, NOUNS)]


def sentence(
    rng: np.random.Generator,
    subject: str | None = None,
    obj: str | None = None,
    place: str | None = None,
    p_very: float = 0.1,
) -> list[str]:
    """One grammatical sentence (without the final ``.``). ``subject``/``obj``/``place``
    force those words in; the rest is random."""
    out = []
    if subject is None and rng.random() < 0.1:
        out += [_pick(rng, TIMES), ","]
    r = rng.random()
    if subject is None and r < 0.7:  # things that act are animate, in the corpus at least
        subject = _pick(rng, ANIMALS + PEOPLE) if rng.random() < 0.85 else None
    out += noun_phrase(rng, subject, p_very=p_very)
    if obj is not None or r < 0.4:
        out += [_pick(rng, VERBS_TRANS)] + noun_phrase(rng, obj or _pick(rng, NOUNS), p_very=p_very)
    elif r < 0.7:
        out.append(_pick(rng, VERBS_INTRANS))
    else:
        out.append("is")
        if place is None and rng.random() < 0.6:
            out += (["very"] if rng.random() < p_very else []) + [_pick(rng, ADJECTIVES)]
            return out
    if out[-1] != "is" and rng.random() < 0.3:
        out.append(_pick(rng, ADVERBS))
    if place is not None or out[-1] == "is" or rng.random() < 0.4:
        out += [_pick(rng, PREPS), "the", place or _pick(rng, PLACES)]
    return out


def list_sentence(rng: np.random.Generator, category: str, k: int) -> list[str]:
    items = list(rng.choice(CATEGORIES[category], size=k, replace=False))
    out = []
    for w in items[:-1]:
        out += [str(w), ","]
    out[-1:] = ["and", str(items[-1])]
    return out


def text(rng: np.random.Generator, n_min: int = 1, n_max: int = 4) -> str:
    """A short text: sentences that often share a subject or a place, as stories do."""
    n = int(rng.integers(n_min, n_max + 1))
    if rng.random() < 0.1:
        cat = _pick(rng, LIST_CATEGORIES)
        return " ".join(list_sentence(rng, cat, int(rng.integers(2, 5))) + ["."])
    subject = _pick(rng, NOUNS) if rng.random() < 0.5 else None
    words = []
    for _ in range(n):
        s = sentence(rng, subject if rng.random() < 0.6 else None)
        words += s + ["."]
    return " ".join(words)
