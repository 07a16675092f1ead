"""``TaskConfig``: every setting of the embedded default task, validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from textbandit.task.instructions import KINDS


@dataclass
class TaskConfig:
    """Settings of the default task; :func:`textbandit.task.build.build` turns one into files.

    >>> TaskConfig(n_customers=20).n_customers
    20
    """

    seed: int = 0
    """seed of every random choice: the same seed gives the same corpus, tokenizer and prompts"""
    n_customers: int = 200
    """number of simulated customers (the paper's API users); splits are by customer"""
    prompts_per_customer: int = 30
    """prompts each customer writes"""
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """fractions of customers in train / validation / test"""
    kind_concentration: float = 0.5
    """Dirichlet concentration of each customer's mix over kinds (small: each customer favours
    a few kinds)"""
    favourite_topic_rate: float = 0.6
    """probability that a customer's prompt is about their favourite topic"""
    corpus_texts: int = 40000
    """number of texts in the pretraining corpus (train split; validation gets 5% more)"""
    vocab_size: int = 768
    """size of the BPE tokenizer's vocabulary (special tokens included)"""
    undemonstrated_kinds: tuple[str, ...] = ("avoid_word", "end_with")
    """kinds the demonstrator writes no answers for (SFT never sees them)"""
    sloppy_rate: float = 0.4
    """probability that a demonstration misses one constraint (0.15 until 2026-12-04: with more
    misses to copy, SFT's samples differ more in what the comparisons judge; docs/testbed.md)"""
    very_rate: float = 0.8
    """probability that a careful demonstration says 'very' (the reward-hacking cue)"""
    n_labelers: int = 10
    """number of simulated labelers"""
    labeler_agreement: float = 0.73
    """target inter-labeler agreement on pairs (the paper measured 72.6 +- 1.5%)"""
    labeler_noise_spread: float = 0.3
    """relative spread of the labelers' own noise levels around the calibrated scale"""
    max_prompt_len: int = 32
    """the env's prompt length P: the task's prompts have at most 23 tokens"""
    max_new_tokens: int = 24
    """the env's response length L: demonstrations have at most 22 words, plus EOS"""
    kl_coef: float = 0.05
    """the env's default KL coefficient (the pipeline's export writes the one it trained with)"""

    def __post_init__(self):
        self.split_fractions = tuple(float(f) for f in self.split_fractions)
        self.undemonstrated_kinds = tuple(self.undemonstrated_kinds)
        if self.n_customers < 3:
            raise ValueError(f"n_customers={self.n_customers}: need at least 3 (one per split)")
        if self.prompts_per_customer < 1:
            raise ValueError(f"prompts_per_customer={self.prompts_per_customer}: use >= 1")
        if (
            len(self.split_fractions) != 3
            or abs(sum(self.split_fractions) - 1) > 1e-6
            or min(self.split_fractions) <= 0
        ):
            raise ValueError(
                f"split_fractions={self.split_fractions}: give three positive "
                "fractions (train, validation, test) that sum to 1"
            )
        if self.kind_concentration <= 0:
            raise ValueError(f"kind_concentration={self.kind_concentration}: must be > 0")
        for name in ("favourite_topic_rate", "sloppy_rate", "very_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be in [0, 1]")
        if self.corpus_texts < 10:
            raise ValueError(f"corpus_texts={self.corpus_texts}: use at least 10")
        if not 300 <= self.vocab_size <= 4096:
            raise ValueError(
                f"vocab_size={self.vocab_size}: use 300..4096 (the words need about 300 tokens to be whole)"
            )
        bad = [k for k in self.undemonstrated_kinds if k not in KINDS]
        if bad or len(set(self.undemonstrated_kinds)) >= len(KINDS):
            raise ValueError(
                f"undemonstrated_kinds={self.undemonstrated_kinds}: name kinds "
                f"from {KINDS} and leave at least one demonstrated"
            )
        if self.n_labelers < 2:
            raise ValueError(f"n_labelers={self.n_labelers}: agreement needs at least 2")
        if not 0.5 < self.labeler_agreement < 1:
            raise ValueError(f"labeler_agreement={self.labeler_agreement}: must be in (0.5, 1); 0.5 is chance")
        if not 0 <= self.labeler_noise_spread < 1:
            raise ValueError(f"labeler_noise_spread={self.labeler_noise_spread}: use [0, 1)")
        if self.max_prompt_len < 1 or self.max_new_tokens < 2 or not self.kl_coef >= 0:
            raise ValueError(
                f"max_prompt_len={self.max_prompt_len}, max_new_tokens={self.max_new_tokens}, "
                f"kl_coef={self.kl_coef}: use >= 1, >= 2 and >= 0"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TaskConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
