"""``SFTConfig``: the settings of supervised fine-tuning, each documented once and validated."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.common.training import TrainConfig


@dataclass
class SFTConfig(TrainConfig):
    """Supervised fine-tuning on demonstrations (InstructGPT section 3.5); the fields it shares with
    reward-model training are :class:`agents.common.training.TrainConfig`'s.

    >>> SFTConfig(model="base", train="demos.jsonl", out="sft", epochs=2).epochs
    2
    """

    model: str | None = None
    """local path of the causal LM to fine-tune (HF format); may be None when a model object is passed"""
    train: str = field(default="", metadata={"required": True})
    """demonstrations JSONL ({"prompt", "response"} per line) to train on"""
    out: str = field(default="", metadata={"required": True})
    """output directory: the fine-tuned model (HF format), metrics.jsonl, tb/, checkpoint/"""
    val: str | None = None
    """demonstrations JSONL for the validation loss each epoch (None: no validation)"""
    epochs: int = 16
    """passes over the demonstrations (the paper used 16: RM score and preference kept improving
    after the validation loss started rising at epoch 1)"""
    lr: float = 1e-4
    """peak learning rate of AdamW"""
    batch_size: int = 16
    """demonstrations per micro-batch"""
    dropout: float | None = 0.2
    """dropout set on every dropout of the model for training (the paper's residual dropout of 0.2);
    models without residual dropout (Llama, Qwen2, ...) get it on what they have, with a warning;
    None keeps the model's"""
    select_by_rm: str | None = None
    """reward-model directory: keep the epoch whose samples on validation prompts score highest
    (the paper chose its SFT models this way); None keeps the last epoch"""
    select_prompts: int = 64
    """validation prompts sampled for the reward-model choice"""
    select_max_new_tokens: int = 32
    """tokens sampled per prompt for the reward-model choice"""

    def __post_init__(self):
        super().__post_init__()
        if not self.train:
            raise ValueError("train is empty; pass --train demos.jsonl (demonstrations to fine-tune on)")
        if not self.out:
            raise ValueError("out is empty; pass --out DIR (where the fine-tuned model is written)")
        for name in ("epochs", "batch_size", "select_prompts", "select_max_new_tokens"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}; use an int >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}; the learning rate must be > 0")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}; use 0 <= dropout < 1, or None to keep the model's")
        if self.select_by_rm is not None and self.val is None:
            raise ValueError("select_by_rm needs validation prompts; pass --val demos_val.jsonl")
