"""Tiny pretraining, SFT, reward-model and PPO runs, for tests/test_distributed.py to launch under
``torchrun`` (and as one plain process, whose results the distributed ones must equal).

    python tests/distributed_worker.py OUT DATA JOB [JOB ...]
    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py OUT DATA JOB [JOB ...]

``DATA`` holds demos.jsonl and comparisons.jsonl (written by the test). Each job writes its final
weights to ``OUT/<job>.pt`` (rank 0) and its history to ``OUT/<job>.json``. Jobs ``fail`` and
``hang`` make rank 1 raise or stop answering in PPO's first iteration.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny import PROMPTS, tiny_lm, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
RANK = int(os.environ.get("RANK", "0"))
QUIET = dict(progress=False, tensorboard=False, device="cpu")


class Stop(Exception):
    pass


def save(out: Path, job: str, weights: dict, history=None) -> None:
    if RANK == 0:
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, out / f"{job}.pt")
        (out / f"{job}.json").write_text(json.dumps(history or []))


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    weights = {f"model.{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()}
    if (folder / "reward_head.safetensors").exists():
        weights.update({f"head.{k}": v for k, v in load_file(str(folder / "reward_head.safetensors")).items()})
    return weights


def sft(out: Path, data: Path, job: str = "sft", **extra) -> None:
    from agents.sft import SFTConfig, train_sft

    kw = dict(train=str(data / "demos.jsonl"), val=str(data / "demos.jsonl"), epochs=2, batch_size=4, grad_accum=2)
    kw.update(lr=1e-3, dropout=0.0, max_prompt_len=8, max_response_len=6, **QUIET, **extra)
    if job.endswith("resume"):  # stopped after 2 steps, then resumed
        train_sft(SFTConfig(out=str(out / job), stop_after=2, **kw), model=tiny_lm(len(TOK)), tokenizer=TOK)
        kw["resume_from"] = str(out / job / "checkpoint")
    path = train_sft(SFTConfig(out=str(out / job), **kw), model=tiny_lm(len(TOK)), tokenizer=TOK)
    save(out, job, load_weights(Path(path)))


def rm(out: Path, data: Path, job: str = "rm", **extra) -> None:
    from agents.reward import RewardConfig, train_reward_model
    from textbandit.reward_model import RewardModel

    kw = dict(train=str(data / "comparisons.jsonl"), val=str(data / "comparisons.jsonl"), batch_size=2, grad_accum=2)
    kw.update(normalize_with=str(data / "demos.jsonl"), lr=1e-3, max_prompt_len=8, max_response_len=6, **QUIET, **extra)
    model = RewardModel.from_causal_lm(tiny_lm(len(TOK), seed=2))
    path = train_reward_model(RewardConfig(out=str(out / job), **kw), model=model, tokenizer=TOK)
    save(out, job, load_weights(Path(path)), json.loads((Path(path) / "summary.json").read_text())["val_history"])


def ppo_config(out: Path, job: str, **kw):
    from agents.ppo import PPOConfig

    base = dict(batch_size=8, minibatch_size=4, total_iterations=2, update_epochs=2, max_new_tokens=6, kl_coef=0.05)
    base.update(learning_rate=3e-3, lr_schedule="constant", missing_eos_penalty=None, samples_every=1, **QUIET)
    base.update(out=str(out / job), ptx_coef=0.5, ptx_batch_size=4, adaptive_kl=True, target_kl=0.5)
    base.update(value_lr_scale=3.0)  # the value head's own optimizer group, found in DDP, FSDP2 and LoRA too
    base.update(kw)
    return PPOConfig(**base)


def ppo_env(lm):
    from agents.examples.toy import KeywordReward

    return dict(
        task=None,
        reward_model=KeywordReward(TOK.convert_tokens_to_ids("fish")),
        reference_model=lm,
        tokenizer=TOK,
        prompts=PROMPTS,
        max_prompt_len=8,
    )


PTX = ["the cat sees a dog .", "a red fish", "two birds eat one small fish ."]


def ppo(out: Path, data: Path, job: str = "ppo") -> None:
    from agents.ppo import train

    lm = tiny_lm(len(TOK))
    if job == "ppo_resume":  # stopped after its first iteration's checkpoint, then resumed

        def stop(iteration, stats, policy):
            if iteration == 1:
                raise Stop

        try:
            train(ppo_config(out, job, save_every=1), policy=lm, env_kwargs=ppo_env(lm), ptx_texts=PTX, callback=stop)
        except Stop:
            pass
        result = train(
            ppo_config(out, job, save_every=1, resume=True), policy=lm, env_kwargs=ppo_env(lm), ptx_texts=PTX
        )
    elif job == "ppo_fsdp":
        result = train(ppo_config(out, job, fsdp=True), policy=lm, env_kwargs=ppo_env(lm), ptx_texts=PTX)
    elif job == "ppo_critic":  # the pipeline's default: a value model initialised from the reward model
        from textbandit.reward_model import RewardModel

        env = {**ppo_env(lm), "reward_model": RewardModel.from_causal_lm(tiny_lm(len(TOK), seed=2))}
        result = train(ppo_config(out, job, value_model="reward", ptx_coef=0.0), policy=lm, env_kwargs=env)
    elif job == "ppo_lora":  # adapters on the start model, its base with them off the reference
        env = {k: v for k, v in ppo_env(lm).items() if k != "reference_model"}
        result = train(ppo_config(out, job, lora_r=4, ptx_coef=0.0), policy=lm, env_kwargs=env)
    else:
        result = train(ppo_config(out, job), policy=lm, env_kwargs=ppo_env(lm), ptx_texts=PTX)
    drop = ("time/", "lr")
    history = [{k: v for k, v in h.items() if not k.startswith(drop)} for h in result["history"]]
    from agents.common.distributed import full_state_dict

    save(out, job, full_state_dict(result["policy"]), history)  # gathered under FSDP2 (on every rank)


def pretrain(out: Path, data: Path, job: str = "pretrain") -> None:
    from agents import pretrain as module
    from agents.pretrain import PretrainArgs
    from agents.pretrain import pretrain as run

    # no dropout: ranks draw other masks than one process does (the same distribution, not the same numbers)
    module.SIZES["small"] = {**module.SIZES["small"], "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    # float32 (no bf16 autocast on an AMX CPU): the ranks' sums must match one process's to 1e-4
    run(
        PretrainArgs(
            size="small",
            steps=2,
            batch_size=5,
            warmup=1,
            out=str(out / job),
            progress=False,
            device="cpu",
            cpu_bf16=False,
        )
    )
    save(out, job, load_weights(out / job))


def failing(out: Path, data: Path, job: str) -> None:
    """PPO in which rank 1 raises (``fail``) or stops answering (``hang``) after its first iteration."""
    from agents.ppo import train

    def misbehave(iteration, stats, policy):
        if RANK == 1 and job == "fail":
            raise RuntimeError("rank 1 failed on purpose")
        if RANK == 1 and job == "hang":
            time.sleep(600)

    lm = tiny_lm(len(TOK))
    train(ppo_config(out, job, ptx_coef=0.0, dist_timeout_s=5.0), policy=lm, env_kwargs=ppo_env(lm), callback=misbehave)


def stages(out: Path, data: Path) -> None:
    """The pipeline's stage records under torchrun: a rank-0 stage, an every-rank stage, then both
    reused on every rank (each stage function notes which rank ran it)."""
    from agents.common import distributed
    from agents.pipeline.stages import Stages

    distributed.setup("cpu")
    ran = []

    def note(path: Path, name: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / f"rank{RANK}").write_text(name)
        ran.append(name)

    for _ in range(2):  # the second pass reuses both
        record = Stages(out / "stages")
        record("alone", lambda d: note(d, "alone"), {"x": 1})
        record("together", lambda d: note(d, "together"), {"x": 2, "after": record.keys["alone"]}, every_rank=True)
    (out / "stages" / f"ran_by_rank{RANK}.json").write_text(json.dumps(ran))


def groups(out: Path, data: Path) -> None:
    """PPO's optimizer groups on a policy in DDP and sharded by FSDP2: the value head's group holds
    the head's own (sharded) parameters, the other group the rest (rank 0 writes what it found)."""
    from agents.common import distributed
    from agents.ppo.learner import param_groups
    from agents.ppo.policy import PolicyWithValueHead

    d = distributed.setup("cpu")
    found = {}
    for how in ("ddp", "fsdp"):
        policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)), pad_token_id=TOK.pad_token_id)
        wrapped = distributed.wrap(policy, d, fsdp=how == "fsdp")
        lm_group, value_group = param_groups(wrapped, 3.0)
        head = [id(p) for p in distributed.unwrap(wrapped).value_head.parameters()]
        found[how] = {
            "value_group_is_the_head": [id(p) for p in value_group["params"]] == head,
            "every_parameter_once": sorted(id(p) for g in (lm_group, value_group) for p in g["params"])
            == sorted(id(p) for p in wrapped.parameters()),
            "sharded": distributed.is_sharded(wrapped),
            "lr_scale": value_group["lr_scale"],
        }
    if RANK == 0:
        (out / "groups.json").write_text(json.dumps(found))


JOBS = {
    "stages": stages,
    "groups": groups,
    "sft": sft,
    "sft_resume": lambda out, data: sft(out, data, "sft_resume"),
    "rm": rm,
    "ppo": ppo,
    "ppo_resume": lambda out, data: ppo(out, data, "ppo_resume"),
    "ppo_lora": lambda out, data: ppo(out, data, "ppo_lora"),
    "ppo_critic": lambda out, data: ppo(out, data, "ppo_critic"),
    "sft_fsdp": lambda out, data: sft(out, data, "sft_fsdp", fsdp=True),
    "sft_fsdp_resume": lambda out, data: sft(out, data, "sft_fsdp_resume", fsdp=True),
    "rm_fsdp": lambda out, data: rm(out, data, "rm_fsdp", fsdp=True),
    "ppo_fsdp": lambda out, data: ppo(out, data, "ppo_fsdp"),
    "pretrain": pretrain,
    "fail": lambda out, data: failing(out, data, "fail"),
    "hang": lambda out, data: failing(out, data, "hang"),
}


def main(argv: list[str]) -> None:
    out, data, jobs = Path(argv[0]), Path(argv[1]), argv[2:]
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        t0 = time.perf_counter()
        JOBS[job](out, data)
        print(f"rank {RANK}: {job} done in {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
