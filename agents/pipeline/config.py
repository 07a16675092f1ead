"""``PipelineConfig`` and the presets of ``textbandit pipeline``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """The sizes and budgets of one preset. Per-size settings map each size run to its value."""

    n_customers: int
    """simulated customers of the task (split by customer)"""
    prompts_per_customer: int
    """prompts each customer writes"""
    corpus_texts: int
    """texts in the pretraining corpus"""
    sizes: tuple[str, ...]
    """the model sizes SFT and PPO run at; the first is the main one, the others form the size sweep"""
    large_size: str
    """the large base model the small PPO model must beat"""
    pretrain_steps: dict[str, int]
    """pretraining steps per size"""
    sft_epochs: dict[str, int]
    """SFT epochs per size (on 2 CPU cores the 11M model's 16 epochs alone take over half an hour)"""
    comparison_prompts: int
    """comparisons the labelers rank, each K samples of one training prompt; more than the training
    split holds go through its prompts again with fresh samples (InstructGPT's reward model saw
    33k prompts; the quick task has 4,200)"""
    validation_comparison_prompts: int
    """held-out prompts ranked for the reward model's accuracy"""
    k: tuple[int, int]
    """K is drawn in this range per prompt (the paper: 4 to 9)"""
    rm_epochs: int
    """reward-model epochs"""
    rm_lr: float
    """reward-model learning rate"""
    ppo_iterations: dict[str, int]
    """PPO iterations per size"""
    ppo_batch: int
    """responses per PPO iteration (minibatches of a quarter of it)"""
    kl_sweep: tuple[float, ...]
    """KL coefficients run beside the default one (0 shows over-optimisation)"""
    kl_coef: float
    """PPO's default KL coefficient (PipelineConfig.kl_coef unset); the run exports it as its task's"""
    eval_prompts: int
    """test prompts every model is judged on"""
    curve_every: int
    """the held-out gold curve is measured every this many PPO iterations"""
    curve_prompts: int
    """validation prompts of the held-out gold curve"""
    comparison_temperature: float = 1.0
    """the temperature the SFT model samples the comparisons' responses at: 1.3 cuts the held-out
    gold ties from 30.6% to 20.9%, but the reward model then falls further behind the labelers
    (benchmarks/README.md, "Sixth pass"), so the presets keep 1.0"""
    sft_lr: float = 3e-3
    """SFT's peak learning rate: on the 0.9M-parameter small model 3e-3 reaches gold 0.69 in 4
    epochs where 3e-4 reached 0.57 (benchmarks/README.md, "The SFT model's learning rate")"""
    sft_dropout: float = 0.0
    """SFT's dropout: the paper's 0.2 costs the small model 4 points of gold in 4 epochs"""
    ppo_learning_rate: float = 1e-5
    """PPO's peak learning rate"""
    ppo_update_epochs: int = 4
    """PPO's passes over each rollout batch"""
    concurrent: bool = True
    """whether the pipeline's ``concurrent`` defaults to on (see PipelineConfig.concurrent)"""
    shipped_bases: bool = False
    """start from the default task's pretrained small base model (``textbandit/assets/default/base-small``,
    pretrained with this preset's steps), as InstructGPT started from a pretrained GPT-3, instead of
    pretraining it in the run; the large base, which only the evaluation reads, is pretrained in the run
    (21 MB in fp16, it would take the shipped data past 10 MB). See PipelineConfig.pretrain"""
    ppo_value_model: str = "reward"
    """PPO's value function: 'reward', a separate model initialised from the reward model (the
    paper's; its explained variance passes 0.5 within the quick budget, where the shared-trunk
    head stays near 0.35: benchmarks/README.md), or 'shared', a head on the policy's trunk"""


# `quick` must finish within 10 minutes on 2 CPU cores; `full` (a model-size sweep, more data)
# within 60; `tiny` is for the test suite only.
PRESETS: dict[str, Preset] = {
    "quick": Preset(
        n_customers=200,
        prompts_per_customer=30,
        corpus_texts=40000,
        sizes=("small",),
        large_size="large",
        pretrain_steps={"small": 300, "large": 300},
        sft_epochs={"small": 4},
        comparison_prompts=4000,  # 3 epochs: as good as 6,000 in 2 and 30 s sooner (benchmarks/README.md)
        validation_comparison_prompts=200,
        k=(4, 9),
        rm_epochs=3,  # 2: RM 67.2% and PPO over SFT 63.9%; 3: 69.1% and 65.1% (3 seeds each, kl_coef 0.2)
        rm_lr=3e-4,
        ppo_iterations={"small": 45},  # with 30, the better reward model held off over-optimisation at kl_coef=0
        ppo_batch=64,
        kl_sweep=(0.0,),
        kl_coef=0.2,  # 0.05: PPO over SFT 2-4 points less (benchmarks/README.md, "Thirteenth pass")
        eval_prompts=512,  # 256 left the headline's interval 10 points wide
        curve_every=3,
        curve_prompts=192,
        ppo_learning_rate=1e-4,
        ppo_update_epochs=4,
        shipped_bases=True,
    ),
    "full": Preset(
        n_customers=400,
        prompts_per_customer=40,
        corpus_texts=80000,
        sizes=("small", "large"),
        large_size="large",
        pretrain_steps={"small": 1200, "large": 800},
        sft_epochs={"small": 16, "large": 4},
        comparison_prompts=6000,  # 2 epochs: on the quick task PPO over SFT 61.7%, not 58% (benchmarks/README.md)
        validation_comparison_prompts=600,
        k=(4, 9),
        rm_epochs=2,
        rm_lr=3e-4,
        ppo_iterations={"small": 80, "large": 30},
        ppo_batch=64,
        kl_sweep=(0.0, 0.02, 0.2),
        kl_coef=0.05,  # 0.2 is level with it here (68.3-70.8% against 70.1-70.4%; benchmarks/README.md)
        eval_prompts=600,
        curve_every=5,
        curve_prompts=256,
        ppo_learning_rate=1e-4,
        ppo_update_epochs=4,
    ),
    "tiny": Preset(
        n_customers=20,
        prompts_per_customer=6,
        corpus_texts=400,
        sizes=("small",),
        large_size="large",
        pretrain_steps={"small": 4, "large": 2},
        sft_epochs={"small": 1},
        comparison_prompts=12,
        validation_comparison_prompts=8,
        k=(4, 5),
        rm_epochs=1,
        rm_lr=3e-4,
        ppo_iterations={"small": 2},
        ppo_batch=8,
        kl_sweep=(0.0,),
        kl_coef=0.05,
        eval_prompts=8,
        curve_every=1,
        curve_prompts=8,
        concurrent=False,
    ),
}


@dataclass
class PipelineConfig:
    """The InstructGPT recipe end to end: pretrain, SFT, collect, RM, PPO (+ptx), evaluate.

    Every stage writes Hugging Face format into ``out``; a stage whose output is complete and was
    built with the same settings is not run again, so an interrupted pipeline continues where it
    stopped.
    """

    out: str = "runs/quick"
    """output folder: one sub-folder per stage, report.json, report.md and PNG plots"""
    preset: str = "quick"
    """'quick' (within 10 minutes on 2 CPU cores), 'full' (a model-size sweep, more data), or 'tiny' (tests)"""
    seed: int = 0
    """seed of the task, the models and the samples"""
    base_model: str | None = None
    """your own base causal LM (a local path or a hub name) instead of pretraining the small one; it
    must use the task's tokenizer (every model of the report is sampled and judged in one environment),
    which is checked at start; to fine-tune a model with another tokenizer on your own data, run the
    stages one by one (textbandit sft, collect, rm, ppo)"""
    pretrain: bool | None = None
    """pretrain every base model in the run (true), or start from those the default task ships (false:
    textbandit/assets/default/base-small, pretrained with the quick preset's 300 steps; the large base
    is pretrained in the run either way). A shipped base fits only a task with the default task's
    tokenizer, which seed 0 at the quick preset's task size has. Unset: the preset's choice (quick
    starts from the shipped one when it fits, as InstructGPT started from a pretrained GPT-3; full
    and tiny pretrain)"""
    demonstrations: str | None = None
    """your own demonstrations JSONL ({"prompt", "response"}) instead of the task's"""
    comparisons: str | None = None
    """your own K-wise comparisons JSONL ({"prompt", "responses", "ranking"}) instead of sampling
    and ranking with the task's simulated labelers; 10% of its prompts (seeded) are held out for the
    reward model's accuracy unless --comparisons-val is given. Labeler agreement needs a second
    labeler's ranking, which such a file does not hold, so the report leaves that finding unjudged"""
    comparisons_val: str | None = None
    """held-out comparisons JSONL for the reward model's accuracy (goes with --comparisons)"""
    kl_coef: float | None = None
    """the default KL coefficient of PPO (the sweep adds kl_coef=0; the full preset also 0.02 and 0.2);
    unset: the preset's (quick 0.2, full 0.05). The run's task is exported with it, so the default
    task's TextBandit-v0 rewards with the quick preset's 0.2 (a task you build defaults to 0.05,
    TaskConfig.kl_coef). On the quick preset 0.2 holds PPO nearer SFT and is preferred over SFT about
    4 points more often than 0.05 (benchmarks/README.md, "Thirteenth pass")"""
    reward_fn: tuple[str, ...] = ()
    """reward functions with TRL's signature (package.module:function or path/to/file.py:function; repeat the
    flag for several) that score PPO's responses beside the trained reward model"""
    reward_weights: tuple[float, ...] = ()
    """PPO's weight of each reward source: the trained reward model first, then each --reward-fn (empty: all
    1; 0 for the reward model trains on the functions alone)"""
    ptx_coef: float = 1.0
    """weight of the pretraining loss in PPO-ptx"""
    rm_batching: str = "kwise"
    """the reward model's batching: 'kwise', the paper's (one prompt's K completions a batch element,
    each forwarded once), or 'pairs', every pair a shuffled data point as in TRL's RewardTrainer. On
    the quick run's comparisons, two seeds each, pairs reach 70.1% held out (TRL's 70.2%) where
    K-wise reaches 67.3% in the same steps, at 6.7x the time; K-wise at 6 epochs reaches 69.0% in
    under half pairs' time (benchmarks/README.md, "Seventh pass")"""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'"""
    export_defaults: bool = False
    """copy the run's task folder with its SFT and reward models (OUT/export) into textbandit/assets/default,
    the task TextBandit-v0 serves with no arguments"""
    progress: bool = True
    """show progress bars"""
    concurrent: bool | None = None
    """on a CPU with 2 or more cores, build the stages no later stage but the evaluation reads (the large
    base model, the PPO runs) in processes of their own beside the main one, half the cores' threads each
    (agents/pipeline/background.py); false builds every stage in turn in this process; unset: the preset's
    choice (on for quick and full; off for tiny, whose stages take less time than starting a process)"""
    report_to: tuple[str, ...] = ()
    """more metric backends for every training stage: 'wandb', 'trackio' (see textbandit ppo --help)"""
    project: str = "textbandit"
    """the W&B or trackio project the stages are logged under"""
    rebuild: bool = False
    """rebuild the finished stages in --out whose settings (or whose inputs' settings) differ from this
    run's; without it such a stage is an error naming the stage and the settings that changed"""

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r}; use one of {sorted(PRESETS)}")
        if self.kl_coef is None:
            self.kl_coef = PRESETS[self.preset].kl_coef
        if not self.kl_coef > 0:
            raise ValueError(f"kl_coef={self.kl_coef}; the default KL coefficient must be > 0 (0 is in the sweep)")
        if self.comparisons_val and not self.comparisons:
            raise ValueError("comparisons_val is the held-out part of your own comparisons: pass --comparisons too")
        from agents.reward.config import BATCHING  # here: the module's imports load torch

        if self.rm_batching not in BATCHING:
            raise ValueError(f"rm_batching={self.rm_batching!r}; use 'kwise' (the paper) or 'pairs' (as TRL)")
        if self.ptx_coef < 0:
            raise ValueError(f"ptx_coef={self.ptx_coef}; use >= 0")
        if self.reward_weights and len(self.reward_weights) != 1 + len(self.reward_fn):
            raise ValueError(
                f"reward_weights={list(self.reward_weights)}: give {1 + len(self.reward_fn)} weights, the trained "
                "reward model's first, then one per --reward-fn"
            )

    @property
    def settings(self) -> Preset:
        return PRESETS[self.preset]

    def to_dict(self) -> dict:
        return asdict(self)
