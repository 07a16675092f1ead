"""The gold labeler on hand-written satisfied and violated cases for every kind."""

import pytest

from textbandit.task import KINDS, gold_details, gold_score, gold_scores, parse, render
from textbandit.task.language import parse_sentence

P = "instruction : {} response :"

# kind -> (prompt body, satisfying response, violating response)
CASES = {
    "topic": ("write about animals .", "the cat runs in the park .", "the cake is red . my book is old ."),
    "include_word": (
        "write about food . include a color .",
        "the cat eats the red cake .",
        "the cat eats the big cake .",
    ),
    "avoid_word": (
        "write about food . do not use the word cake .",
        "the girl eats the bread .",
        "the girl eats the cake .",
    ),
    "n_sentences": ("write 2 sentences about people .", "anna runs . the teacher sleeps .", "anna runs ."),
    "max_words": ("write about objects in at most 5 words .", "the ball is red .", "the big ball is in the park ."),
    "start_with": (
        "write about animals . start with a time .",
        "today , the dog sleeps .",
        "the dog sleeps alone .",
    ),
    "end_with": (
        "write about animals . end with a place .",
        "the duck swims in the lake .",
        "the duck swims quickly .",
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
        "instruction : write about cars . include a color . response :",
        "instruction : write about food . include a car . response :",  # no such category
    ],
)  # no such topic
def test_malformed_prompts_raise_value_error(prompt):
    with pytest.raises(ValueError, match="not a default-task prompt"):
        gold_score(prompt, "the cat runs .")


@pytest.mark.parametrize(
    "text, sensible",
    [
        ("the dog eats a sweet cake", True),
        ("today , the happy cat runs", True),
        ("the cake is in the park", True),
        ("anna opens the door quickly", True),
        ("red , blue and green", True),
        ("the cake eats the dog", False),  # only animate things act
        ("my sad coin is red", False),  # or have feelings
        ("the cake is happy", False),
        ("anna opens the cat", False),  # opens takes an object
        ("tom eats the book", False),  # eats takes food
        ("the teacher helps the spoon", False),  # helps takes someone animate
    ],
)
def test_makes_sense(text, sensible):
    from textbandit.task.language import makes_sense

    assert parse_sentence(text.split())
    assert makes_sense(text.split()) is sensible


def test_gold_halves_for_grammatical_nonsense():
    prompt = P.format("write about food .")
    sensible = gold_details(prompt, "the girl eats the cake .")
    nonsense = gold_details(prompt, "the cake eats the girl .")
    assert sensible["score"] == 1.0 and sensible["sense"] == 1.0
    assert nonsense["grammar"] == 1.0 and all(nonsense["constraints"]) and nonsense["sense"] == 0.0
    assert nonsense["score"] == pytest.approx(0.5)  # (0.6 * 1 + 0.4 * 1) * (0.5 + 0.5 * 0)
    half = gold_details(prompt, "the girl eats the cake . the cake eats the girl .")
    assert half["sense"] == 0.5 and half["score"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "body, response, credits",
    [
        # 1 of 3 sentences on topic misses "on topic": 0.5 * 1/3; exactly 3 sentences is met
        ("write 3 sentences about animals .", "the cat runs . my cup is red . a cake is big .", [0.5 / 3, 1.0]),
        ("write 3 sentences about animals .", "the cat runs .", [1.0, 0.5 * (1 - 2 / 3)]),  # 1 of 3
        ("write about objects in at most 5 words .", "the big ball is in the park .", [1.0, 0.5 * (1 - 2 / 5)]),
        ("list 4 colors .", "red , blue and green .", [1.0, 0.5 * 0.75]),  # 3 of 4 items
        ("list 3 colors .", "apple , pear and orange .", [0.5 / 3, 0.5 / 3]),  # a food list: orange is a color too
        ("write about food . include a name .", "the cat eats the bread .", [1.0, 0.0]),  # no near miss
    ],
)
def test_missed_constraints_earn_graded_credit(body, response, credits):
    from textbandit.task.instructions import credits as graded
    from textbandit.task.language import split_sentences

    sentences, _ = split_sentences(response)
    assert graded(parse(P.format(body)), sentences) == pytest.approx(credits)
    d = gold_details(P.format(body), response)
    assert d["explicit"] == pytest.approx(sum(credits) / len(credits))


@pytest.mark.parametrize(
    "body, response, met",
    [
        ("write about people . include a name .", "tom runs .", [True, True]),
        ("write about people . include a place .", "tom runs in the park .", [True, True]),
        ("write about people . include a place .", "tom runs .", [True, False]),
        ("write about food . start with a name .", "anna eats the cake .", [True, True]),
        ("write about food . start with a name .", "the girl eats the cake .", [True, False]),
        ("write about food . end with an adverb .", "anna eats the cake often .", [True, True]),
        ("write about food . end with an adverb .", "anna often eats the cake .", [True, False]),  # an adverb, not last
    ],
)
def test_category_constraints_take_any_word_of_the_category(body, response, met):
    assert gold_details(P.format(body), response)["constraints"] == met


def test_a_fact_answer_names_what_was_asked_about():
    prompt = P.format("the cat is red . the dog is blue . what color is the dog ?")
    assert gold_details(prompt, "the dog is blue .")["constraints"] == [True, True, True, True]
    # "blue" and nothing else, but about the wrong thing: a miss
    assert gold_details(prompt, "the sky bird is blue .")["constraints"][3] is False
    assert gold_score(prompt, "the bird is blue .") < gold_score(prompt, "the dog is blue .")
