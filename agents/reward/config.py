"""``RewardConfig``: the settings of reward-model training, each documented once and validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass

BATCHING = ("kwise", "pairs")


@dataclass
class RewardConfig:
    """Reward-model training on K-wise comparisons (InstructGPT section 3.5).

    >>> RewardConfig(model="sft", train="comparisons.jsonl", out="rm").batching
    'kwise'
    """

    model: str | None = None
    """local path of the SFT causal LM to start from (its unembedding is replaced by a scalar head)"""
    train: str = ""
    """comparisons JSONL ({"prompt", "responses", "ranking"} or {"prompt", "chosen", "rejected"})"""
    out: str = ""
    """output directory: the reward model, metrics.jsonl, tb/, summary.json, checkpoint/"""
    val: str | None = None
    """comparisons JSONL of held-out customers, for validation accuracy and loss"""
    normalize_with: str | None = None
    """demonstrations JSONL: after training, shift the head's bias so these score 0 on average
    (the paper did this before RL); None skips normalisation"""
    batching: str = "kwise"
    """'kwise': the pairs of one prompt form one batch element, each completion forwarded once (the
    paper); 'pairs': every pair an independent, shuffled data point (the paper's overfitting ablation)"""
    epochs: int = 1
    """passes over the comparisons (the paper trained one epoch: more overfits)"""
    lr: float = 5e-5
    """peak learning rate of AdamW"""
    warmup_ratio: float = 0.03
    """fraction of the optimizer steps spent in linear warmup"""
    min_lr_ratio: float = 0.1
    """learning rate at the end of the cosine decay, as a fraction of the peak"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    batch_size: int = 8
    """comparisons (prompts) per micro-batch with 'kwise' batching"""
    pair_batch_size: int | None = None
    """pairs per micro-batch with 'pairs' batching; None: as many pairs as batch_size comparisons
    hold on average, so both batchings take the same number of steps per epoch"""
    grad_accum: int = 1
    """micro-batches per optimizer step"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold on the global L2 norm (0 disables clipping)"""
    dropout: float | None = 0.0
    """residual dropout of the trunk while training; None keeps the SFT model's setting"""
    max_prompt_len: int = 64
    """prompts longer than this keep their last tokens"""
    max_response_len: int = 64
    """responses are cut to this many tokens, EOS included"""
    eval_batch_size: int = 64
    """completions per forward pass in evaluation and normalisation"""
    eval_every: int = 0
    """also validate every this many optimizer steps (0: at the end of each epoch only)"""
    seed: int = 0
    """seed of the head's initialisation and the data order"""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'"""
    bf16: bool = True
    """bf16 autocast on GPU (ignored on CPU)"""
    checkpoint_every: int = 0
    """save a resumable checkpoint every this many optimizer steps (0: at the end of each epoch only)"""
    resume_from: str | None = None
    """checkpoint directory (OUT/checkpoint) of an earlier run to continue exactly"""
    overwrite: bool = False
    """a fresh run into an out folder that holds a run replaces it (its logs and checkpoints are removed
    first); without it such a run is refused"""
    stop_after: int | None = None
    """end the run after this many optimizer steps, leaving a checkpoint (a planned interruption)"""
    tensorboard: bool = True
    """also write TensorBoard events to OUT/tb"""
    progress: bool = True
    """show a tqdm progress bar"""

    def __post_init__(self):
        if not self.train:
            raise ValueError("train is empty; pass --train comparisons.jsonl")
        if not self.out:
            raise ValueError("out is empty; pass --out DIR (where the reward model is written)")
        if self.batching not in BATCHING:
            raise ValueError(f"batching={self.batching!r}; use 'kwise' (the paper) or 'pairs' (the ablation)")
        for name in ("epochs", "batch_size", "grad_accum", "max_prompt_len", "eval_batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}; use an int >= 1")
        if self.pair_batch_size is not None and self.pair_batch_size < 1:
            raise ValueError(f"pair_batch_size={self.pair_batch_size}; use >= 1 or None (matched to batch_size)")
        if self.max_response_len < 2:
            raise ValueError(f"max_response_len={self.max_response_len}; use >= 2 (one token plus EOS)")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}; the learning rate must be > 0")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("use 0 <= warmup_ratio < 1 and 0 <= min_lr_ratio <= 1")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}; use 0 <= dropout < 1, or None to keep the SFT model's")
        if self.max_grad_norm < 0 or self.weight_decay < 0 or self.eval_every < 0 or self.checkpoint_every < 0:
            raise ValueError("max_grad_norm, weight_decay, eval_every and checkpoint_every must be >= 0")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f"stop_after={self.stop_after}; use >= 1 or None")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}; use 'auto', 'cpu' or 'cuda[:i]'")

    def to_dict(self) -> dict:
        return asdict(self)
