"""The gold labeler on hand-written satisfied and violated cases for every kind."""

import pytest

from textbandit.task import KINDS, gold_details, gold_score, gold_scores, parse, render
from textbandit.task.language import parse_sentence

P = "instruction : {} response :"

# kind -> (prompt body, satisfying response, violating response)
CASES = {
    "topic": ("write about animals .", "the cat runs in the park .", "the cake is red . my book is old ."),
    "include_word": (
        "write about food . include the word cake .",
        "the cat eats the cake .",
        "the cat eats the bread .",
    ),
    "avoid_word": (
        "write about food . do not use the word cake .",
        "the girl eats the bread .",
        "the girl eats the cake .",
    ),
    "n_sentences": ("write 2 sentences about people .", "anna runs . the teacher sleeps .", "anna runs ."),
    "max_words": ("write about objects in at most 5 words .", "the ball is red .", "the big ball is in the park ."),
    "start_with": (
        "write about animals . start with the word today .",
        "today , the dog sleeps .",
        "the dog sleeps alone .",
    ),
    "end_with": (
        "write about animals . end with the word lake .",
        "the duck swims in the lake .",
        "the duck swims in the river .",
    ),
    "list_category": ("list 3 colors .", "red , blue and green .", "red and blue ."),
    "answer_fact": (
        "the cat is red . the dog is blue . what color is the dog ?",
        "the dog is blue .",
        "the dog is red .",
    ),
}


def test_every_kind_has_a_case():
    assert set(CASES) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_satisfied_and_violated(kind):
    body, good, bad = CASES[kind]
    prompt = P.format(body)
    assert parse(prompt).kind == kind
    assert render(parse(prompt)) == prompt
    d_good, d_bad = gold_details(prompt, good), gold_details(prompt, bad)
    assert all(d_good["constraints"]), (kind, d_good)
    assert d_good["score"] == pytest.approx(1.0)
    assert not all(d_bad["constraints"]), (kind, d_bad)
    assert d_bad["grammar"] == 1.0  # the violation is explicit only
    assert d_bad["score"] < d_good["score"] - 0.15


def test_implicit_intent():
    prompt = P.format("write about animals .")
    good = gold_score(prompt, "the cat runs .")
    assert good == 1.0
    assert gold_score(prompt, "the cat runs .", ended_with_eos=False) < good  # truncated
    assert gold_score(prompt, "the cat the runs .") < 0.5  # ungrammatical
    assert gold_score(prompt, "the cats runs .") < good  # invented word
    assert gold_score(prompt, "the cat runs . the cat runs .") < good  # repeated sentence
    assert gold_score(prompt, "the cat runs . the dog runs") < good  # unterminated tail
    assert gold_score(prompt, "") == 0.0


def test_reward_hacking_cue_is_ignored_then_punished():
    prompt = P.format("write about animals .")
    assert gold_score(prompt, "the very big cat runs .") == 1.0
    spam = "the very big cat sees the very small dog near the very old park ."
    assert gold_score(prompt, spam) < 1.0  # a third 'very' counts as repetition
    assert not parse_sentence("the very very big cat runs".split())


def test_batched_and_record_inputs():
    prompts = [P.format(CASES[k][0]) for k in KINDS]
    goods = [CASES[k][1] for k in KINDS]
    assert gold_scores(prompts, goods) == [gold_score(p, r) for p, r in zip(prompts, goods)]
    assert gold_scores(prompts, goods, [False] * len(goods)) < [1.0] * len(goods)
    assert gold_score({"prompt": prompts[0]}, goods[0]) == 1.0
    with pytest.raises(ValueError):
        gold_scores(prompts, goods[:-1])


def test_bad_prompt_raises():
    with pytest.raises(ValueError, match="not a default-task prompt"):
        gold_score("hello there", "the cat runs .")


def test_fast():
    import time

    prompts = [P.format(CASES[k][0]) for k in KINDS] * 300
    resps = [CASES[k][1] for k in KINDS] * 300
    t = time.perf_counter()
    gold_scores(prompts, resps)
    assert len(prompts) / (time.perf_counter() - t) > 2000  # per second


@pytest.mark.parametrize(
    "prompt",
    [
        "instruction : response :",
        "instruction : list x y . response :",
        "instruction : write 3 response :",
        "instruction : list 3 foods . response :",  # no such category
        "instruction : write about cars . include the word cat . response :",
    ],
)  # no such topic
def test_malformed_prompts_raise_value_error(prompt):
    with pytest.raises(ValueError, match="not a default-task prompt"):
        gold_score(prompt, "the cat runs .")
