"""``SFTConfig``: the settings of supervised fine-tuning, each documented once and validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class SFTConfig:
    """Supervised fine-tuning on demonstrations (InstructGPT section 3.5).

    >>> SFTConfig(model="base", train="demos.jsonl", out="sft", epochs=2).epochs
    2
    """

    model: str | None = None
    """local path of the causal LM to fine-tune (HF format); may be None when a model object is passed"""
    train: str = ""
    """demonstrations JSONL ({"prompt", "response"} per line) to train on"""
    out: str = ""
    """output directory: the fine-tuned model (HF format), metrics.jsonl, tb/, checkpoint/"""
    val: str | None = None
    """demonstrations JSONL for the validation loss each epoch (None: no validation)"""
    epochs: int = 16
    """passes over the demonstrations (the paper used 16: RM score and preference kept improving
    after the validation loss started rising at epoch 1)"""
    lr: float = 1e-4
    """peak learning rate of AdamW"""
    warmup_ratio: float = 0.03
    """fraction of the optimizer steps spent in linear warmup"""
    min_lr_ratio: float = 0.1
    """learning rate at the end of the cosine decay, as a fraction of the peak"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    batch_size: int = 16
    """demonstrations per micro-batch"""
    grad_accum: int = 1
    """micro-batches per optimizer step (the loss is averaged over all their response tokens)"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold on the global L2 norm (0 disables clipping)"""
    dropout: float | None = 0.2
    """residual dropout set on the model's config for training (the paper's 0.2); models without one (Llama,
    Qwen2, ...) get it as attention dropout, with a warning; None keeps the model's"""
    max_prompt_len: int = 64
    """prompts longer than this keep their last tokens"""
    max_response_len: int = 64
    """responses are cut to this many tokens, EOS included"""
    seed: int = 0
    """seed of the data order, dropout and sampling"""
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
    """end the run after this many optimizer steps, leaving a checkpoint (a planned interruption;
    the schedule still spans all epochs)"""
    select_by_rm: str | None = None
    """reward-model directory: keep the epoch whose samples on validation prompts score highest
    (the paper chose its SFT models this way); None keeps the last epoch"""
    select_prompts: int = 64
    """validation prompts sampled for the reward-model choice"""
    select_max_new_tokens: int = 32
    """tokens sampled per prompt for the reward-model choice"""
    tensorboard: bool = True
    """also write TensorBoard events to OUT/tb"""
    progress: bool = True
    """show a tqdm progress bar"""

    def __post_init__(self):
        if not self.train:
            raise ValueError("train is empty; pass --train demos.jsonl (demonstrations to fine-tune on)")
        if not self.out:
            raise ValueError("out is empty; pass --out DIR (where the fine-tuned model is written)")
        for name in ("epochs", "batch_size", "grad_accum", "max_prompt_len", "select_prompts", "select_max_new_tokens"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name}={getattr(self, name)!r}; use an int >= 1")
        if self.max_response_len < 2:
            raise ValueError(f"max_response_len={self.max_response_len}; use >= 2 (one token plus EOS)")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}; the learning rate must be > 0")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio}, min_lr_ratio={self.min_lr_ratio}; "
                             "use 0 <= warmup_ratio < 1 and 0 <= min_lr_ratio <= 1")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}; use 0 <= dropout < 1, or None to keep the model's")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ValueError("max_grad_norm and weight_decay must be >= 0 (0 disables them)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}; use 'auto', 'cpu' or 'cuda[:i]'")
        if self.checkpoint_every < 0 or (self.stop_after is not None and self.stop_after < 1):
            raise ValueError("checkpoint_every must be >= 0 and stop_after >= 1 (or None)")
        if self.select_by_rm is not None and self.val is None:
            raise ValueError("select_by_rm needs validation prompts; pass --val demos_val.jsonl")

    def to_dict(self) -> dict:
        return asdict(self)
