import math

import pytest

from agents.pipeline.metrics import mean_by, rouge_l, sentence_bleu, win_rate


def test_win_rate_counts_ties_half():
    assert win_rate([1, 2, 3, 0], [0, 2, 4, 0]) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    with pytest.raises(ValueError):
        win_rate([1], [1, 2])


def test_bleu_identical_is_one_and_disjoint_is_zero():
    assert sentence_bleu("the cat sees the dog .", "the cat sees the dog .") == pytest.approx(1.0)
    assert sentence_bleu("red blue green", "cat dog bird") == 0.0


def test_bleu_by_hand():
    # hyp "the cat runs" vs ref "the cat runs fast": p1 = 3/3, p2 = (2+1)/(2+1), p3 = (1+1)/(1+1),
    # p4 = (0+1)/(0+1); brevity = exp(1 - 4/3)
    expected = math.exp(1 - 4 / 3) * math.exp((math.log(1) + math.log(1) + math.log(1) + math.log(1)) / 4)
    assert sentence_bleu("the cat runs", "the cat runs fast") == pytest.approx(expected)
    # hyp "a b c d" vs ref "a b x d": p1 = 3/4, p2 = (1+1)/(3+1), p3 = (0+1)/(2+1), p4 = (0+1)/(1+1)
    expected = math.exp((math.log(3 / 4) + math.log(2 / 4) + math.log(1 / 3) + math.log(1 / 2)) / 4)
    assert sentence_bleu("a b c d", "a b x d") == pytest.approx(expected)


def test_rouge_l_by_hand():
    # LCS("a b c d", "a c e d") = "a c d" = 3; p = 3/4, r = 3/4
    assert rouge_l("a b c d", "a c e d") == pytest.approx(0.75)
    assert rouge_l("x", "y") == 0.0


def test_mean_by():
    assert mean_by(["a", "b", "a"], [1, 5, 3]) == {"a": 2.0, "b": 5.0}
