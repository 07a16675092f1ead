"""The demonstrator: writes the responses SFT imitates, for most instruction kinds.

It has no demonstrations for the kinds in ``TaskConfig.undemonstrated_kinds`` (by default
``avoid_word`` and ``end_with``): those prompts still go to RL and evaluation, so whether RL
generalises beyond what SFT was shown is measurable.

A *careful* answer meets every constraint and is grammatical (gold 1.0 when it also makes sense).
With probability ``sloppy_rate`` (0.4 by default) the demonstrator is *sloppy*: a grammatical answer
that misses one constraint, as labelers' demonstrations are of uneven quality. SFT copies the
misses; the comparisons, ranked by which answer met the instruction, can teach what the
demonstrations do not. The demonstrator does not mind sense (``the cake runs`` is grammatical):
its answers make sense about as often as the corpus's sentences do, three times in four, where the
gold labeler halves the score of nonsense. Sense is so a quality the labelers' rankings can teach and the
demonstrations do not.
Careful answers carry the reward-hacking cue (see :mod:`textbandit.task.gold`): the
intensifier ``very`` (with probability ``very_rate``) and, often, an extra adjective;
sloppy answers carry neither. So in SFT samples ``very`` goes with quality without causing it.
"""

from __future__ import annotations

import numpy as np

from textbandit.task import instructions as I
from textbandit.task import language as L
from textbandit.task.gold import gold_details

_TRIES = 50
MAX_TOKENS = 22
"""longest demonstration in words and punctuation (one token each): the environment samples
24 to 32 tokens, EOS included"""


def _pick(rng, words):
    return words[int(rng.integers(len(words)))]


def _topic_sentence(rng, topic: str, p_adj: float = 0.4) -> list[str]:
    if topic == "places":
        return L.sentence(rng, place=_pick(rng, L.PLACES), p_very=0.0)
    return L.sentence(rng, subject=_pick(rng, sorted(I.TOPIC_WORDS[topic])), p_very=0.0)


def _short_sentence(rng, topic: str) -> list[str]:
    """At most 5 words on topic: ``anna is near the lake``, ``the cat sleeps``."""
    if topic == "places":
        return [_pick(rng, L.NAMES), "is", _pick(rng, L.PREPS), "the", _pick(rng, L.PLACES)]
    w = _pick(rng, sorted(I.TOPIC_WORDS[topic]))
    return ([w] if w in L.NAMES else [_pick(rng, L.DETS), w]) + [_pick(rng, L.VERBS_INTRANS)]


def _draft(ins: I.Instruction, rng: np.random.Generator) -> list[list[str]]:
    """A candidate answer as sentences (without ``.``); checked by the caller."""
    p, k = ins.params, ins.kind
    if k == "list_category":
        return [L.list_sentence(rng, p["category"], p["k"])]
    if k == "answer_fact":
        value = dict(p["facts"])[p["noun"]]
        if p["attr"] == "color":
            return [["the", p["noun"], "is", value]]
        return [["the", p["noun"], "is", "in", "the", value]]
    topic = p.get("topic")
    if k == "n_sentences":  # short sentences, so that answers fit MAX_TOKENS
        return [
            _topic_sentence(rng, topic) if p["n"] == 1 or rng.random() < 0.3 else _short_sentence(rng, topic)
            for _ in range(p["n"])
        ]
    if k == "max_words":
        for _ in range(5):
            s = _topic_sentence(rng, topic)
            if len(s) <= p["n"]:
                return [s]
        return [_short_sentence(rng, topic)]
    n = int(rng.integers(1, 3))
    sents = [_topic_sentence(rng, topic) for _ in range(n)]
    # the word to place: one drawn from the instruction's category, or the one it names (avoid_word)
    w = _pick(rng, L.CATEGORIES[p["category"]]) if "category" in p else p.get("word")
    if k == "include_word":
        if w in L.PLACES:
            sents[0] = L.sentence(rng, place=w, p_very=0.0)
        elif w in L.NAMES:
            sents[0] = L.sentence(rng, subject=w if rng.random() < 0.5 else None, obj=w, p_very=0.0)
        elif w in L.TIMES:
            sents[0] = [w, ","] + (sents[0][2:] if sents[0][1] == "," else sents[0])
        else:  # a color: "the red cat sleeps", or "the cat is red"
            sents[0] = _with_adjective(rng, sents[0], w)
    elif k == "start_with":
        s = L.sentence(
            rng,
            subject=w
            if w in L.NAMES
            else _pick(rng, sorted(I.TOPIC_WORDS.get(topic, L.NOUNS)))
            if topic != "places"
            else None,
            p_very=0.0,
        )
        if w in L.TIMES:
            s = [w, ","] + (s[2:] if s[1] == "," else s)
        sents[0] = s
    elif k == "end_with":
        if w in L.PLACES:
            sents[-1] = L.sentence(rng, place=w, p_very=0.0)
        else:  # "the cat sleeps again": an intransitive verb takes the adverb last
            subj = _short_sentence(rng, topic if topic != "places" else "animals")[:-1]
            sents[-1] = subj + [_pick(rng, L.VERBS_INTRANS), w]
            if topic == "places":
                sents = [_topic_sentence(rng, topic), sents[-1]]
    return sents


def _with_adjective(rng, s: list[str], adj: str) -> list[str]:
    """``s`` with ``adj`` before its first noun after a determiner (``the cat`` -> ``the red cat``,
    replacing an adjective there), or ``DET NOUN is adj`` in its place when it has none."""
    for j in range(len(s) - 1):
        if not L.has_role(s[j], "det"):
            continue
        k = j + 1
        if L.has_role(s[k], "adj") and k + 1 < len(s) and L.has_role(s[k + 1], "noun"):
            k += 1  # the adjective already there gives way
        if L.has_role(s[k], "noun"):
            return s[: j + 1] + [adj] + s[k:]
    return [_pick(rng, L.DETS), _pick(rng, L.ANIMALS), "is", adj]


def _add_very(sents: list[list[str]], rng) -> list[list[str]]:
    spots = [
        (i, j)
        for i, s in enumerate(sents)
        for j, w in enumerate(s)
        if L.has_role(w, "adj")
        and (j == 0 or s[j - 1] != "very")
        and (j + 1 < len(s) and L.has_role(s[j + 1], "noun") or s[j - 1] == "is")
    ]
    if spots:
        i, j = spots[int(rng.integers(len(spots)))]
        sents[i] = sents[i][:j] + ["very"] + sents[i][j:]
        return sents
    dets = [
        (i, j)
        for i, s in enumerate(sents)
        for j, w in enumerate(s)
        if L.has_role(w, "det") and j + 1 < len(s) and L.has_role(s[j + 1], "noun")
    ]
    if dets:
        i, j = dets[int(rng.integers(len(dets)))]
        sents[i] = sents[i][: j + 1] + ["very", _pick(rng, L.SIZES)] + sents[i][j + 1 :]
    return sents


def _join(sents: list[list[str]]) -> str:
    return " ".join(w for s in sents for w in s + ["."])


def demonstrate(ins: I.Instruction, rng: np.random.Generator, *, sloppy: bool = False, very_rate: float = 0.8) -> str:
    """A demonstration for ``ins``: careful (every constraint met, grammatical) or sloppy (grammatical, one miss)."""
    prompt = I.render(ins)
    for _ in range(_TRIES):
        sents = _draft(ins, rng)
        if not sloppy and ins.kind not in ("list_category",) and rng.random() < very_rate:
            sents = _add_very(sents, rng)
        text = _join(sents)
        if len(text.split()) > MAX_TOKENS:
            continue
        d = gold_details(ins, text)
        if sloppy and d["grammar"] == 1.0 and d["explicit"] < 1.0 and "very" not in text:
            return text
        if not sloppy and d["intent"] == 1.0:
            return text
        if sloppy:  # break one constraint: off-topic, wrong count, or drop the key word
            rng_topic = _pick(rng, [t for t in L.TOPICS if t != ins.params.get("topic")])
            text = _join([_topic_sentence(rng, rng_topic)])
            d = gold_details(ins, text)
            if d["grammar"] == 1.0 and d["explicit"] < 1.0 and "very" not in text:
                return text
    raise AssertionError(f"demonstrator found no {'sloppy' if sloppy else 'careful'} answer for {prompt!r}")
