"""Instruction kinds: parameters, prompt text, parsing back, and the explicit-intent checks.

A prompt is one line, ``instruction : <body> response :``; the response follows it. Each kind
has parameters and a list of checkable constraints (its explicit intent):

| kind | body | constraints |
| --- | --- | --- |
| topic | ``write about animals .`` | on topic |
| include_word | ``write about food . include a color .`` | on topic, has a word of that category |
| avoid_word | ``write about food . do not use the word cake .`` | on topic, lacks word |
| n_sentences | ``write 3 sentences about places .`` | on topic, exactly n sentences |
| max_words | ``write about people in at most 8 words .`` | on topic, at most n words |
| start_with | ``write about animals . start with a name .`` | on topic, first word of that category |
| end_with | ``write about animals . end with a place .`` | on topic, last word of that category |
| list_category | ``list 3 colors .`` | one list of that category, k items |
| answer_fact | ``the cat is red . the dog is blue . what color is the dog ?`` | answer, no other, 1 sentence, noun |

"On topic" means at least one topic word and at least half the sentences hold one.

include_word, start_with and end_with name a category of words (a color, a name, a place), not a
word: meeting them needs no word copied from the prompt, which a model of a million parameters
trained for minutes does not learn (benchmarks/README.md, "Sixth pass"). avoid_word names a word,
which a response meets by not writing it.

:func:`credits` grades each constraint: 1 when met, else half of how close the response came
(the share of sentences on topic, of list items in the category; how far a count is off), so two
answers that both miss a constraint still differ in how far they missed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textbandit.task import language as L

KINDS = (
    "topic",
    "include_word",
    "avoid_word",
    "n_sentences",
    "max_words",
    "start_with",
    "end_with",
    "list_category",
    "answer_fact",
)

TOPIC_WORDS: dict[str, frozenset[str]] = {
    "animals": frozenset(L.ANIMALS),
    "people": frozenset(L.PEOPLE + L.NAMES),
    "food": frozenset(L.FOODS),
    "objects": frozenset(L.OBJECTS),
    "places": frozenset(L.PLACES),
}
INCLUDE_CATEGORIES = ("colors", "names", "places", "times")
START_CATEGORIES = ("names", "times")
END_CATEGORIES = ("places", "adverbs")
SINGULAR = {"colors": "a color", "names": "a name", "places": "a place", "times": "a time", "adverbs": "an adverb"}
"""how an instruction names one word of a category"""
_CATEGORY_OF = {v.split()[-1]: k for k, v in SINGULAR.items()}
N_SENTENCES = (1, 2, 3)
MAX_WORDS = tuple(range(5, 11))
LIST_SIZES = (2, 3, 4, 5)
PREFIX, SUFFIX = "instruction :", "response :"


@dataclass(frozen=True)
class Instruction:
    """One instruction: its kind and parameters (strings and ints only)."""

    kind: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown instruction kind {self.kind!r}; use one of {KINDS}")


def render(ins: Instruction) -> str:
    """The prompt text of an instruction."""
    p = ins.params
    body = {
        "topic": lambda: f"write about {p.get('topic')} .",
        "include_word": lambda: f"write about {p.get('topic')} . include {SINGULAR.get(p.get('category'))} .",
        "avoid_word": lambda: f"write about {p.get('topic')} . do not use the word {p.get('word')} .",
        "n_sentences": lambda: (
            f"write {p.get('n')} sentences about {p.get('topic')} ."
            if p.get("n") != 1
            else f"write 1 sentence about {p.get('topic')} ."
        ),
        "max_words": lambda: f"write about {p.get('topic')} in at most {p.get('n')} words .",
        "start_with": lambda: f"write about {p.get('topic')} . start with {SINGULAR.get(p.get('category'))} .",
        "end_with": lambda: f"write about {p.get('topic')} . end with {SINGULAR.get(p.get('category'))} .",
        "list_category": lambda: f"list {p.get('k')} {p.get('category')} .",
        "answer_fact": lambda: _render_fact(p),
    }[ins.kind]()
    return f"{PREFIX} {body} {SUFFIX}"


def _render_fact(p: dict) -> str:
    facts = []
    for noun, value in p["facts"]:
        facts.append(f"the {noun} is {value} ." if p["attr"] == "color" else f"the {noun} is in the {value} .")
    q = f"what color is the {p['noun']} ?" if p["attr"] == "color" else f"where is the {p['noun']} ?"
    return " ".join(facts + [q])


def parse(prompt: str) -> Instruction:
    """Invert :func:`render`: the instruction a prompt text asks for."""
    try:
        return _parse(prompt)
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"not a default-task prompt ({e}): {prompt!r}; prompts come from instructions.render") from e


def _parse(prompt: str) -> Instruction:
    ins = _parse_fields(prompt)
    p = ins.params
    if "topic" in p and p["topic"] not in TOPIC_WORDS:
        raise ValueError(f"unknown topic {p['topic']!r} (topics: {sorted(TOPIC_WORDS)})")
    if ins.kind == "list_category" and p["category"] not in L.CATEGORIES:
        raise ValueError(f"unknown category {p['category']!r} (categories: {sorted(L.CATEGORIES)})")
    return ins


def _parse_fields(prompt: str) -> Instruction:
    words = prompt.split()
    if words[:2] != PREFIX.split() or words[-2:] != SUFFIX.split():
        raise ValueError(f"not a default-task prompt (want '{PREFIX} ... {SUFFIX}'): {prompt!r}")
    body = words[2:-2]
    b = " ".join(body)
    if body[-1] == "?":
        attr = "color" if "color" in body else "place"
        facts, i = [], 0
        while body[i] == "the" and body[i + 2] == "is":
            j = body.index(".", i)
            facts.append((body[i + 1], body[j - 1]))
            i = j + 1
        return Instruction("answer_fact", {"attr": attr, "facts": facts, "noun": body[-2]})
    if body[0] == "list":
        return Instruction("list_category", {"k": int(body[1]), "category": body[2]})
    if body[0] == "write" and body[1].isdigit():
        return Instruction("n_sentences", {"n": int(body[1]), "topic": body[4]})
    topic = body[2]
    if "at most" in b:
        return Instruction("max_words", {"topic": topic, "n": int(body[6])})
    kinds = {"include": "include_word", "start": "start_with", "end": "end_with"}
    if len(body) > 4 and body[4] == "do":
        return Instruction("avoid_word", {"topic": topic, "word": body[-2]})
    if len(body) > 4 and body[4] in kinds:
        return Instruction(kinds[body[4]], {"topic": topic, "category": _CATEGORY_OF[body[-2]]})
    return Instruction("topic", {"topic": topic})


def on_topic(sentences: list[list[str]], topic: str) -> bool:
    words = TOPIC_WORDS[topic]
    hits = [any(w in words for w in s) for s in sentences]
    return any(hits) and sum(hits) >= len(hits) / 2


def constraints(ins: Instruction, sentences: list[list[str]]) -> list[bool]:
    """Explicit intent: which of the instruction's constraints the response meets.
    ``sentences`` are the response's complete sentences (without their ``.``)."""
    p, k = ins.params, ins.kind
    words = [w for s in sentences for w in s if w != ","]
    if k == "list_category":
        ok = (
            len(sentences) == 1
            and L._is_list(sentences[0])
            and all(w in L.CATEGORIES[p["category"]] for w in sentences[0] if w not in (",", "and"))
        )
        return [ok, ok and len(words) - 1 == p["k"]]
    if k == "answer_fact":
        truth = dict(p["facts"])[p["noun"]]
        others = {v for _, v in p["facts"]} - {truth}
        return [truth in words, not others & set(words), len(sentences) == 1, p["noun"] in words]
    out = [on_topic(sentences, p["topic"])]
    if k == "include_word":
        out.append(any(w in L.CATEGORIES[p["category"]] for w in words))
    elif k == "avoid_word":
        out.append(p["word"] not in words)
    elif k == "n_sentences":
        out.append(len(sentences) == p["n"])
    elif k == "max_words":
        out.append(0 < len(words) <= p["n"])
    elif k == "start_with":
        out.append(bool(words) and words[0] in L.CATEGORIES[p["category"]])
    elif k == "end_with":
        out.append(bool(words) and words[-1] in L.CATEGORIES[p["category"]])
    return out


MISS_CREDIT = 0.5
"""the most a missed constraint earns (times how close the response came)"""


def credits(ins: Instruction, sentences: list[list[str]], met: list[bool] | None = None) -> list[float]:
    """Graded explicit intent, one credit in [0, 1] per constraint of :func:`constraints`: 1 when
    met; when missed, ``MISS_CREDIT`` times how close the response came: the share of sentences
    holding a topic word (on topic), of list items in the category (one list), how far the count
    is off relative to the asked count (exactly n sentences, at most n words, k items); 0 for the
    all-or-nothing constraints (a word of the category included, first or last; a word avoided;
    the right answer).
    ``met``: :func:`constraints` of the same response, when the caller has it already.

    >>> credits(parse("instruction : write 2 sentences about people . response :"), [["anna", "runs"]])
    [1.0, 0.25]
    """
    met = constraints(ins, sentences) if met is None else met
    p, k = ins.params, ins.kind
    words = [w for s in sentences for w in s if w != ","]
    close = [0.0] * len(met)
    if k == "list_category":
        if len(sentences) == 1 and L._is_list(sentences[0]):
            items = [w for w in sentences[0] if w not in (",", "and")]
            share = sum(w in L.CATEGORIES[p["category"]] for w in items) / len(items)
            close = [share, share * max(0.0, 1 - abs(len(items) - p["k"]) / p["k"])]
    elif k != "answer_fact":
        topic = TOPIC_WORDS[p["topic"]]
        close[0] = sum(any(w in topic for w in s) for s in sentences) / max(1, len(sentences))
        if k == "n_sentences":
            close[1] = max(0.0, 1 - abs(len(sentences) - p["n"]) / p["n"])
        elif k == "max_words" and words:
            close[1] = max(0.0, 1 - (len(words) - p["n"]) / p["n"])
    return [1.0 if m else MISS_CREDIT * c for m, c in zip(met, close)]
