"""``PPOConfig``: every knob of the PPO learner, each documented once, validated at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agents.common.lora import LoraSettings
from agents.common.scale import ScaleConfig


@dataclass
class PPOConfig(ScaleConfig, LoraSettings):
    """Settings of ``agents.ppo.learner.train``. Batch sizes are *global* (summed over ranks): the
    same config trains the same policy on one process or under ``torchrun`` on N (to float rounding).
    The LoRA, FSDP2 and memory fields are :class:`agents.common.lora.LoraSettings`' and
    :class:`agents.common.scale.ScaleConfig`'s.

    Example::

        cfg = PPOConfig(batch_size=64, minibatch_size=16, total_iterations=50, out="runs/ppo")
    """

    # --- models and task ---
    sft_model: str | None = None
    """the policy's starting point (a causal LM directory); None: the default task's SFT model"""
    reference_model: str | None = None
    """the model the KL penalty is measured against; None: the policy's starting model (sft_model),
    as in lm-human-preferences and TRL, so the first iteration's KL is 0"""
    reward_model: str | None = None
    """a reward model folder (textbandit's, or a Hugging Face sequence classifier with one label such as
    TRL's RewardTrainer writes); None: the task's, unless reward functions replace it (--reward-fn)"""
    reward_fn: tuple[str, ...] = ()
    """reward functions with TRL's signature fn(prompts, completions, **kwargs) -> list[float | None], as
    package.module:function or path/to/file.py:function (repeat the flag for several); without
    --reward-model they replace the task's reward model, with it they score beside it"""
    reward_weights: tuple[float, ...] = ()
    """one weight per reward source, the reward model first when there is one, then each --reward-fn
    (empty: all 1)"""
    tokenizer: str | None = None
    """the tokenizer (a local folder or hub name); None: the task's, or with --task none the sft_model's"""
    prompts: str | None = None
    """prompts to train on: JSONL ({"prompt": ...} per line) or TRL's formats (a "prompt" or "messages"
    column, conversational ones rendered with the tokenizer's chat template), .json, .parquet, .csv or a
    saved datasets folder; the other columns reach the reward functions; None: the task's split"""
    value_model: str = "shared"
    """'shared': a zero-initialised value head on the policy's trunk; 'reward': a separate value
    network initialised from a copy of the environment's reward model, which must then be a
    textbandit RewardModel (as the InstructGPT paper did)"""
    task: str | None = "default"
    """the environment's task: 'default', a built task folder, or none to train your own sft_model on
    your own prompts with your own reward model or reward functions (the tokenizer then comes from
    --tokenizer, else the sft_model folder)"""
    split: str = "train"
    """the customer split whose prompts the policy trains on"""

    # --- rollouts ---
    batch_size: int = 64
    """responses per PPO iteration over all ranks (each rank steps batch_size / world_size envs)"""
    minibatch_size: int = 16
    """responses per gradient step over all ranks; must divide batch_size"""
    total_iterations: int = 100
    """PPO iterations (one rollout batch, then update_epochs epochs over it, each)"""
    max_new_tokens: int | None = None
    """response length L; None: the task's (32 with --task none)"""
    max_prompt_len: int | None = None
    """prompts are left-padded (and checked) to this many tokens; None: the task's (64 with --task none)"""
    temperature: float = 1.0
    """sampling temperature; the env and the update divide the logits by it too (N-details)"""
    top_k: int = 0
    """sample from the k most likely tokens (0: off); the scored distribution stays unfiltered"""
    top_p: float = 1.0
    """nucleus sampling mass (1.0: off)"""
    kv_cache: str = "dynamic"
    """the sampler's KV cache: 'dynamic' (grown each step) or 'static' (preallocated for prompt +
    response: the same shapes every step, which CUDA graphs need)"""
    compile_sampler: bool = False
    """torch.compile the sampler's decoding step (mode reduce-overhead: CUDA graphs on a GPU); needs
    kv_cache='static'; compiling takes a while, so it pays only on long GPU runs"""
    missing_eos_penalty: float | None = 1.0
    """subtracted from the score of a response with no EOS in max_new_tokens (None: no penalty)"""

    # --- PPO ---
    update_epochs: int = 4
    """passes over each rollout batch"""
    learning_rate: float = 1e-5
    """peak AdamW learning rate"""
    lr_schedule: str = "linear"
    """'linear' (decay to 0, as lm-human-preferences), 'cosine' or 'constant'"""
    warmup_iterations: int = 0
    """iterations of linear warm-up"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""
    gamma: float = 1.0
    """discount; 1 because a response is one episode with a terminal score"""
    lam: float = 0.95
    """GAE lambda"""
    clip_coef: float = 0.2
    """the surrogate's ratio clip epsilon"""
    value_clip: float | None = 0.2
    """value clipping range around the rollout's values (None: no clipping)"""
    vf_coef: float = 0.1
    """value-loss weight (shared trunk: keeps value gradients from swamping the policy's)"""
    value_lr_scale: float = 1.0
    """the value function's learning rate (its head, or the separate value model) as a multiple of
    learning_rate: a critic that starts from nothing may need to learn faster than the policy moves"""
    ent_coef: float = 0.0
    """entropy bonus weight (0 as in the paper; the KL penalty already keeps entropy)"""
    whiten_rewards: bool = False
    """rescale token rewards by their std per batch (the default task's RM is already
    normalised so demonstrations score 0; see N-details on reward normalisation)"""
    whiten_advantages: bool = True
    """whiten advantages per rollout batch (N-details)"""

    # --- KL penalty ---
    kl_coef: float | None = None
    """initial KL coefficient beta; None: the task's"""
    adaptive_kl: bool = False
    """adapt beta to reach target_kl (Ziegler et al. 2019)"""
    target_kl: float = 6.0
    """adaptive KL: target KL per response (nats, summed over tokens)"""
    kl_horizon: int = 10000
    """adaptive KL: horizon in responses"""

    # --- PPO-ptx ---
    ptx_coef: float = 0.0
    """weight of the pretraining LM loss mixed into each update (0: plain PPO)"""
    ptx_data: str | None = None
    """pretraining corpus: a .txt (one document a line) or .jsonl with a 'text' field"""
    ptx_batch_size: int = 8
    """pretraining sequences per minibatch"""
    ptx_max_len: int = 64
    """pretraining sequences are cut to this many tokens"""

    # --- run ---
    seed: int = 1
    """seed of the prompts, samples and minibatches; every rank draws the global batch's numbers and takes its rows"""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu' or 'cuda'; under torchrun 'auto' and 'cuda' are each rank's
    own GPU (cuda:LOCAL_RANK)"""
    bf16: bool = True
    """on CUDA: bf16 autocast, fused AdamW, and the frozen models (reference, reward model, LoRA's
    base) in bf16 (ignored on CPU)"""
    out: str = "runs/ppo"
    """output folder: checkpoints, metrics.jsonl, TensorBoard events, samples.jsonl, and final/ (the policy)"""
    save_every: int = 0
    """save a checkpoint every this many iterations (0: only at the end)"""
    resume: bool = False
    """continue the run in out from its checkpoint (RNG state included; a warning and a fresh
    start when there is none); logged lines past the checkpoint's iteration are dropped"""
    overwrite: bool = False
    """a fresh run into an out folder that holds a run replaces it (its logs and checkpoints are
    removed first); without it such a run is refused"""
    log_every: int = 1
    """log scalars every this many iterations"""
    samples_every: int = 10
    """log a table of sample prompts, responses and scores every this many iterations"""
    tensorboard: bool = True
    """write TensorBoard events beside metrics.jsonl"""
    report_to: tuple[str, ...] = ()
    """more metric backends beside metrics.jsonl (and TensorBoard): 'wandb' (pip install 'textbandit[wandb]';
    WANDB_MODE=offline works without an account), 'trackio' (pip install 'textbandit[trackio]'); the sample
    table is logged as a table"""
    project: str = "textbandit"
    """the W&B or trackio project the run is logged under (its name is the out folder's)"""
    progress: bool = True
    """show a progress bar"""
    world_size: int = field(default_factory=lambda: int(os.environ.get("WORLD_SIZE", "1")))
    """data-parallel ranks (torchrun sets WORLD_SIZE)"""
    rank: int = field(default_factory=lambda: int(os.environ.get("RANK", "0")))
    """this process's rank (torchrun sets RANK)"""

    def __post_init__(self):
        ScaleConfig.__post_init__(self)
        LoraSettings.__post_init__(self)
        positive_ints = (
            "batch_size",
            "minibatch_size",
            "total_iterations",
            "update_epochs",
            "kl_horizon",
            "ptx_batch_size",
            "ptx_max_len",
            "world_size",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name}={value!r}; it must be a positive int")
        if self.batch_size % self.world_size or self.minibatch_size % self.world_size:
            raise ValueError(
                f"batch_size={self.batch_size} and minibatch_size={self.minibatch_size} must both be multiples of "
                f"world_size={self.world_size}; round them to multiples of the number of ranks"
            )
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"batch_size={self.batch_size} is not divisible into minibatches of {self.minibatch_size}; "
                f"pick a minibatch_size that divides it (e.g. {self._divisor_hint()})"
            )
        from agents.common.metrics import check_backends

        check_backends(self.report_to)
        if not self.target_kl > 0:
            raise ValueError(f"target_kl={self.target_kl!r}; it must be > 0 (nats per response, e.g. 6.0)")
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature!r}; it must be > 0 (1.0 samples the policy as is)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p!r}; it must be in (0, 1] (1.0 turns nucleus sampling off)")
        if self.kl_coef is not None and not self.kl_coef >= 0:
            raise ValueError(f"kl_coef={self.kl_coef!r}; it must be >= 0 (0 turns the KL penalty off)")
        if self.kv_cache not in ("dynamic", "static"):
            raise ValueError(f"kv_cache={self.kv_cache!r}; use 'dynamic' or 'static'")
        if self.compile_sampler and self.kv_cache != "static":
            raise ValueError("compile_sampler=True needs kv_cache='static' (compiled steps need fixed shapes)")
        if self.value_model not in ("shared", "reward"):
            raise ValueError(f"value_model={self.value_model!r}; use 'shared' or 'reward'")
        if self.lr_schedule not in ("linear", "cosine", "constant"):
            raise ValueError(f"lr_schedule={self.lr_schedule!r}; use 'linear', 'cosine' or 'constant'")
        if not self.value_lr_scale > 0:
            raise ValueError(
                f"value_lr_scale={self.value_lr_scale!r}; it must be > 0 (1.0: the policy's learning rate)"
            )
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma={self.gamma}, lam={self.lam}; both must lie in [0, 1]")
        if self.ptx_coef < 0:
            raise ValueError(f"ptx_coef={self.ptx_coef}; it must be >= 0 (0 is plain PPO)")
        if self.task is None:
            missing = [f"--{n.replace('_', '-')}" for n in ("sft_model", "prompts") if getattr(self, n) is None]
            if self.reward_model is None and not self.reward_fn:
                missing.append("--reward-model or --reward-fn")
            if missing:
                raise ValueError(
                    f"task=None trains your own model on your own data: pass {', '.join(missing)} "
                    "(or use --task default)"
                )
        # the reward model (given, or the task's when no reward function replaces it), then each function
        sources = len(self.reward_fn) + (self.reward_model is not None or not self.reward_fn)
        if self.reward_weights and len(self.reward_weights) != sources:
            raise ValueError(
                f"reward_weights={list(self.reward_weights)}: give one weight per reward source ({sources}: "
                "the reward model first when --reward-model is given, then each --reward-fn)"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank} is outside [0, world_size={self.world_size})")
        if self.lora and self.value_model != "shared":
            raise ValueError(
                f"lora_r={self.lora_r} with value_model={self.value_model!r}: LoRA PPO trains the shared value "
                "head beside the adapters; use value_model='shared' (or lora_r=0)"
            )
        if self.fsdp and (self.lora or self.value_model != "shared"):
            raise ValueError(
                "fsdp=True shards a fully trained policy with the shared value head; with LoRA (lora_r > 0) the "
                "trainable weights are small: use DDP (fsdp=False), and value_model='shared'"
            )

    def _divisor_hint(self) -> int:
        return max(d for d in range(1, self.minibatch_size + 1) if self.batch_size % d == 0)

    # --- the global-batch arithmetic, in one place ---
    @property
    def local_batch_size(self) -> int:
        """Responses this rank samples per iteration (its number of envs)."""
        return self.batch_size // self.world_size

    @property
    def local_minibatch_size(self) -> int:
        """Responses per gradient step on this rank."""
        return self.minibatch_size // self.world_size

    @property
    def num_minibatches(self) -> int:
        """Gradient steps per epoch (the same on every rank)."""
        return self.batch_size // self.minibatch_size
