"""Where a pipeline run's base models come from: the user's own (``--base-model``, checked against
the task's tokenizer before any stage runs), the default task's shipped small one (the quick
preset, as InstructGPT started from a pretrained GPT-3), or pretrained in the run (``base_<size>``
stages; the large one in a process of its own on a CPU, as only the evaluation reads it)."""

from __future__ import annotations

import functools
from pathlib import Path

from agents.common import distributed
from agents.pipeline.config import PipelineConfig
from agents.pipeline.stages import Stages, file_digest, settings_of, with_out
from textbandit.task import DefaultTask, load_task


def pretrain_stages(cfg: PipelineConfig, stage: Stages, task: DefaultTask, device: str):
    """The base models: the sizes PPO runs at, and the large base the small PPO model must beat."""
    from agents.pretrain import PretrainArgs

    s, bases, ids = cfg.settings, {}, {}
    sizes = list(s.sizes) if s.large_size in s.sizes else [s.large_size, *s.sizes]  # the background one first
    shipped = shipped_bases(cfg, task, sizes)
    for size in sizes:
        if size == s.sizes[0] and cfg.base_model:
            bases[size], ids[size] = cfg.base_model, {"base_model": cfg.base_model}
            continue
        if size in shipped:
            stage.announce(f"base_{size}", f"the default task's pretrained one ({shipped[size]})")
            bases[size] = shipped[size]
            ids[size] = {f"base_{size}": file_digest(Path(shipped[size]) / "model.safetensors")}
            continue
        args = PretrainArgs(
            size=size,
            task=str(task.path),
            steps=s.pretrain_steps[size],
            seed=cfg.seed,
            device=device,
            progress=cfg.progress,
        )
        bases[size] = str(
            stage(
                f"base_{size}",
                functools.partial(_pretrain_into, args),
                {**settings_of(args, "task"), "task": stage.keys["task"]},
                every_rank=True,
                background=size not in s.sizes,  # the large base: only the evaluation reads it
            )
        )
        ids[size] = {f"base_{size}": stage.keys[f"base_{size}"]}
    return bases, ids


def shipped_bases(cfg: PipelineConfig, task: DefaultTask, sizes: list[str]) -> dict[str, str]:
    """The default task's pretrained base models the run starts from, by size ({} when it pretrains
    its own): those it ships (the small one), when the preset asks for them or ``cfg.pretrain`` is
    false, and when they fit the run's task. The other sizes are pretrained in the run."""
    if cfg.pretrain or (cfg.pretrain is None and not cfg.settings.shipped_bases):
        return {}
    from transformers import AutoTokenizer

    default = load_task("default")
    found = {size: path for size in sizes if (path := default.base_model(size))}
    vocab = task.load_tokenizer().get_vocab()
    other = [path for path in found.values() if AutoTokenizer.from_pretrained(path).get_vocab() != vocab]
    if not found:
        why = f"the default task ({default.path}) ships no base model of the sizes {sizes}"
    elif other:  # the run's task is not the default one, or the default task was rebuilt since
        why = f"{other[0]} was pretrained with another tokenizer than this run's task's ({task.path})"
    else:
        return found
    if cfg.pretrain is False:
        raise ValueError(
            f"pretrain=false starts from the default task's pretrained base models, but {why}; "
            "pass --pretrain true to pretrain them in the run"
        )
    if distributed.is_main_process():
        print(f"(pretraining the base models: {why})", flush=True)
    return {}


def check_base_model(name: str, tokenizer, tokenizer_path) -> None:
    """Refuse, before any stage runs, a base model that does not use the task's tokenizer: every
    model of the report is sampled and judged in one environment, with the task's tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    fix = (
        f"SFT reads it from the model's folder: save the task's there with "
        f"AutoTokenizer.from_pretrained({str(tokenizer_path)!r}).save_pretrained(PATH)"
    )
    files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if Path(name).is_dir() and not any((Path(name) / f).exists() for f in files):
        raise ValueError(f"base_model={name!r} holds no tokenizer; {fix}")
    try:
        theirs = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"base_model={name!r} has no tokenizer that loads ({e}); {fix}") from e
    vocab = getattr(AutoConfig.from_pretrained(name), "vocab_size", None)
    if theirs.get_vocab() != tokenizer.get_vocab() or vocab is None or vocab < len(tokenizer):
        raise ValueError(
            f"base_model={name!r} does not use the task's tokenizer (its tokenizer has {len(theirs)} tokens and its "
            f"embedding {vocab} rows; the task's has {len(tokenizer)} tokens): the pipeline compares every model "
            "in one environment with the task's tokenizer. Pretrain on the task's tokenizer, or fine-tune your "
            "model on your own data stage by stage (textbandit sft, collect, rm, ppo)"
        )


def _pretrain_into(args, d: Path) -> None:
    """The base-model stage's build (a module-level function: it may run in a process of its own)."""
    from agents.pretrain import pretrain

    pretrain(with_out(args, d))
