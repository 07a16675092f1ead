"""``RewardConfig``: the settings of reward-model training, each documented once and validated."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.common.training import TrainConfig

BATCHING = ("kwise", "pairs")
KWISE_WEIGHTING = ("prompt", "pair")


@dataclass
class RewardConfig(TrainConfig):
    """Reward-model training on K-wise comparisons (InstructGPT section 3.5); the fields it shares
    with SFT are :class:`agents.common.training.TrainConfig`'s.

    >>> RewardConfig(model="sft", train="comparisons.jsonl", out="rm").batching
    'kwise'
    """

    model: str | None = None
    """local path of the SFT causal LM to start from (its unembedding is replaced by a scalar head)"""
    train: str = field(default="", metadata={"required": True})
    """comparisons JSONL ({"prompt", "responses", "ranking"} or {"prompt", "chosen", "rejected"})"""
    out: str = field(default="", metadata={"required": True})
    """output directory: the reward model, metrics.jsonl, tb/, summary.json, checkpoint/"""
    val: str | None = None
    """comparisons JSONL of held-out customers, for validation accuracy and loss"""
    normalize_with: str | None = None
    """demonstrations JSONL: after training, shift the head's bias so these score 0 on average
    (the paper did this before RL); None skips normalisation"""
    batching: str = "kwise"
    """'kwise': the pairs of one prompt form one batch element, each completion forwarded once (the
    paper); 'pairs': every pair an independent, shuffled data point (the paper's overfitting ablation)"""
    kwise_weighting: str = "prompt"
    """how 'kwise' batching weighs a step's pairs: 'prompt', each comparison's loss the mean over its
    pairs and every comparison weighing the same (the paper's 1/C(K,2)); 'pair', every pair weighing
    the same, so a K = 9 comparison's 36 pairs count six times a K = 4 one's 6 (how a trainer of
    shuffled pairs, TRL's RewardTrainer or 'pairs' batching, weighs them); each completion is still
    forwarded once"""
    epochs: int = 1
    """passes over the comparisons (the paper trained one epoch: more overfits)"""
    lr: float = 5e-5
    """peak learning rate of AdamW"""
    batch_size: int = 8
    """comparisons (prompts) per micro-batch with 'kwise' batching"""
    pair_batch_size: int | None = None
    """pairs per micro-batch with 'pairs' batching; None: as many pairs as batch_size comparisons
    hold on average, so both batchings take the same number of steps per epoch"""
    dropout: float | None = 0.0
    """dropout on every dropout of the trunk while training (0: none at all); None keeps the SFT model's"""
    eval_batch_size: int = 64
    """completions per forward pass in evaluation and normalisation"""
    eval_every: int = 0
    """also validate every this many optimizer steps (0: at the end of each epoch only)"""

    def __post_init__(self):
        super().__post_init__()
        if not self.train:
            raise ValueError("train is empty; pass --train comparisons.jsonl")
        if not self.out:
            raise ValueError("out is empty; pass --out DIR (where the reward model is written)")
        if self.batching not in BATCHING:
            raise ValueError(f"batching={self.batching!r}; use 'kwise' (the paper) or 'pairs' (the ablation)")
        if self.kwise_weighting not in KWISE_WEIGHTING:
            raise ValueError(
                f"kwise_weighting={self.kwise_weighting!r}; use 'prompt' (the paper) or 'pair' (every pair alike)"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}; use an int >= 1")
        if self.pair_batch_size is not None and self.pair_batch_size < 1:
            raise ValueError(f"pair_batch_size={self.pair_batch_size}; use >= 1 or None (matched to batch_size)")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}; the learning rate must be > 0")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}; use 0 <= dropout < 1, or None to keep the SFT model's")
        if self.eval_every < 0:
            raise ValueError(f"eval_every={self.eval_every}; use >= 0 (0: at the end of each epoch only)")
