"""The PPO policy and learner on tiny local models in TextBandit-v0 (no default task needed)."""

import copy
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import PROMPTS, tiny_lm, tiny_tokenizer  # noqa: E402

from agents.common.cli import parse_config  # noqa: E402
from agents.examples.toy import KeywordReward  # noqa: E402
from agents.ppo import PolicyWithValueHead, PPOConfig, train  # noqa: E402
from agents.ppo.learner import rollout  # noqa: E402
from textbandit.scoring import response_logprobs  # noqa: E402

TOK = tiny_tokenizer()
TARGET = TOK.convert_tokens_to_ids("fish")


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def env_kwargs(lm):
    return dict(
        task=None,
        reward_model=KeywordReward(TARGET),
        reference_model=lm,
        tokenizer=TOK,
        prompts=PROMPTS,
        max_prompt_len=8,
    )


def config(tmp_path, **kw):
    base = dict(
        batch_size=16,
        minibatch_size=4,
        total_iterations=2,
        max_new_tokens=6,
        kl_coef=0.05,
        learning_rate=3e-3,
        out=str(tmp_path),
        progress=False,
        tensorboard=False,
        samples_every=1,
        missing_eos_penalty=None,
        lr_schedule="constant",
    )
    base.update(kw)
    return PPOConfig(**base)


def test_policy_protocol_and_generate():
    lm = tiny_lm(len(TOK))
    policy = PolicyWithValueHead.from_pretrained(lm, pad_token_id=TOK.pad_token_id)
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]])
    mask = (ids != 0).long()
    resp = policy.generate(ids, mask, 5, TOK.eos_token_id, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert resp.shape == (2, 5)
    rmask = torch.ones_like(resp)
    ours = policy.response_logprobs(ids, mask, resp, rmask, 0.7)
    ref = response_logprobs(lm, ids, mask, resp, rmask, 0.7, TOK.pad_token_id)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    _, values, entropy = policy(ids, mask, resp, rmask, 0.7)
    assert (values == 0).all() and (entropy > 0).all()  # zero-initialised value head
    assert policy.config.vocab_size == len(TOK)


def test_fuse_gelu_swaps_the_python_gelu_and_keeps_the_outputs():
    from transformers.activations import NewGELUActivation

    from agents.common import fuse_gelu_

    lm = tiny_lm(len(TOK))
    fused = fuse_gelu_(copy.deepcopy(lm))
    assert any(isinstance(m, NewGELUActivation) for m in lm.modules())
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert sum(isinstance(m, torch.nn.GELU) for m in fused.modules()) == lm.config.n_layer
    ids = torch.randint(2, len(TOK), (3, 9))
    with torch.no_grad():
        torch.testing.assert_close(fused(ids).logits, lm(ids).logits, atol=1e-5, rtol=1e-5)
    assert fused.config.activation_function == "gelu_new"  # a saved policy loads as before


def test_entropy_is_logged_without_a_graph_unless_it_enters_the_loss():
    policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)), pad_token_id=TOK.pad_token_id)
    ids, resp = torch.tensor([[0, 5, 6], [7, 8, 9]]), torch.tensor([[4, 5, 1], [6, 1, 0]])
    mask, rmask = (ids != 0).long(), torch.tensor([[1, 1, 1], [1, 1, 0]])
    lp, _, ent = policy(ids, mask, resp, rmask, 0.7, entropy_grad=False)
    lp2, _, ent2 = policy(ids, mask, resp, rmask, 0.7)
    assert lp.requires_grad and not ent.requires_grad and ent2.requires_grad
    torch.testing.assert_close(ent, ent2.detach())
    torch.testing.assert_close(lp, lp2)


def test_save_pretrained_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM

    policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)))
    torch.nn.init.normal_(policy.value_head.weight)
    policy.save_pretrained(tmp_path)
    lm = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert lm.config.vocab_size == len(TOK)
    again = PolicyWithValueHead.from_pretrained(tmp_path)
    for (k, a), b in zip(policy.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_first_minibatch_ratio_is_one_and_params_change(tmp_path):
    lm = tiny_lm(len(TOK))
    before = copy.deepcopy(lm.state_dict())
    result = train(config(tmp_path, total_iterations=2), policy=lm, env_kwargs=env_kwargs(lm))
    for h in result["history"]:
        assert h["policy/first_ratio_max_dev"] < 1e-5  # float rounding only: the update cuts padding
    after = result["policy"].lm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(before[k], lm.state_dict()[k]) for k in before)  # the reference is untouched
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "samples.jsonl").exists()


def test_env_logprobs_match_learner_forward(tmp_path):
    lm = tiny_lm(len(TOK))
    cfg = config(tmp_path)
    policy = PolicyWithValueHead.from_pretrained(lm, pad_token_id=TOK.pad_token_id, forward_batch_size=4)
    envs = gym.make_vec("TextBandit-v0", num_envs=16, policy=policy, max_new_tokens=6, **env_kwargs(lm))
    batch = rollout(policy, envs, 0, cfg, torch.Generator().manual_seed(0))
    policy.train()
    idx = torch.randperm(16)[:4]
    lp, _, _ = policy(
        batch.prompt_ids[idx], batch.prompt_mask[idx], batch.responses[idx], batch.mask[idx], cfg.temperature
    )
    assert torch.equal(torch.exp(lp - batch.logprobs[idx]) * batch.mask[idx], batch.mask[idx].float())
    # values reused from the env's scoring forward equal a fresh computation
    torch.nn.init.normal_(policy.value_head.weight)
    policy.response_logprobs(batch.prompt_ids, batch.prompt_mask, batch.responses, batch.mask, 1.0)
    cached = policy.values(batch.prompt_ids, batch.prompt_mask, batch.responses, batch.mask, 1.0)
    fresh = policy.values(batch.prompt_ids, batch.prompt_mask, batch.responses, batch.mask, 1.0)
    assert torch.equal(cached, fresh) and cached.abs().sum() > 0


def test_learns_keyword_bandit(tmp_path):
    lm = tiny_lm(len(TOK))
    cfg = config(tmp_path, batch_size=32, minibatch_size=8, total_iterations=15, kl_coef=0.0, samples_every=0)
    history = train(cfg, policy=lm, env_kwargs=env_kwargs(lm))["history"]
    start, end = history[0]["env/score"], np.mean([h["env/score"] for h in history[-3:]])
    assert start < 1.0 and end > 3.0, (start, end)


class Stop(Exception):
    pass


def stop_at(n):
    def callback(iteration, stats, policy):
        if iteration == n:
            raise Stop

    return callback


def reward_model_kwargs(lm):
    from textbandit.reward_model import RewardModel

    return {**env_kwargs(lm), "reward_model": RewardModel.from_causal_lm(tiny_lm(len(TOK), seed=2, n_embd=16))}


@pytest.mark.parametrize("value_model", ["shared", "reward"])
def test_resume_equals_unbroken_run(tmp_path, value_model):
    lm = tiny_lm(len(TOK))
    kws = reward_model_kwargs(lm) if value_model == "reward" else env_kwargs(lm)
    kw = dict(
        total_iterations=4, save_every=1, adaptive_kl=True, target_kl=0.5, kl_horizon=100, value_model=value_model
    )
    full = train(config(tmp_path / "a", **kw), policy=lm, env_kwargs=kws)
    with pytest.raises(Stop):
        train(config(tmp_path / "b", **kw), policy=lm, env_kwargs=kws, callback=stop_at(2))
    resumed = train(config(tmp_path / "b", resume=True, **kw), policy=lm, env_kwargs=kws)
    assert full["policy"].state_dict().keys() == resumed["policy"].state_dict().keys()
    assert any(k.startswith("value_model.") for k in full["policy"].state_dict()) == (value_model == "reward")
    for (k, a), b in zip(full["policy"].state_dict().items(), resumed["policy"].state_dict().values()):
        assert torch.equal(a, b), k
    drop = [k for k in full["history"][0] if k.startswith("time/") and k != "time/update_tokens"]
    strip = [{k: v for k, v in h.items() if k not in drop} for h in full["history"]]
    assert strip == [{k: v for k, v in h.items() if k not in drop} for h in resumed["history"]]
    assert full["envs"].unwrapped.kl_coef == resumed["envs"].unwrapped.kl_coef != 0.05  # adaptive KL moved


def test_policy_vocabulary_mismatch_is_refused(tmp_path):
    lm = tiny_lm(len(TOK))
    with pytest.raises(ValueError, match="vocabulary"):
        train(config(tmp_path), policy=tiny_lm(len(TOK) + 7), env_kwargs=env_kwargs(lm))
    with pytest.raises(ValueError, match="vocabulary"):
        train(config(tmp_path), policy=tiny_lm(len(TOK) - 2), env_kwargs=env_kwargs(lm))


def test_ptx_loss_is_mixed_in(tmp_path):
    lm = tiny_lm(len(TOK))
    with pytest.raises(ValueError, match="ptx_data"):
        train(config(tmp_path, ptx_coef=0.5), policy=lm, env_kwargs=env_kwargs(lm))
    cfg = config(tmp_path, ptx_coef=0.5, total_iterations=1)
    history = train(cfg, policy=lm, env_kwargs=env_kwargs(lm), ptx_texts=["the cat sees a dog ."] * 4)["history"]
    assert history[0]["loss/ptx"] > 0


def test_separate_value_model(tmp_path):
    class ValueNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(len(TOK), 1)

        def forward(self, input_ids, attention_mask, position_ids=None):
            return self.emb(input_ids).squeeze(-1)

    policy = PolicyWithValueHead(tiny_lm(len(TOK)), value_model=ValueNet(), pad_token_id=TOK.pad_token_id)
    ids, resp = torch.tensor([[5, 6]]), torch.tensor([[7, 8, 1]])
    _, values, _ = policy(ids, torch.ones_like(ids), resp, torch.ones_like(resp), 1.0)
    assert values.shape == (1, 3) and values.requires_grad


def test_cli_flags_parse():
    cfg = parse_config(
        PPOConfig, ["--batch-size", "32", "--kl-coef", "0.1", "--tensorboard", "false", "--missing-eos-penalty", "none"]
    )
    assert (cfg.batch_size, cfg.kl_coef, cfg.tensorboard, cfg.missing_eos_penalty) == (32, 0.1, False, None)
    with pytest.raises(SystemExit):  # a config error is a usage error naming the fix
        parse_config(PPOConfig, ["--batch-size", "30", "--minibatch-size", "16"])


def test_single_rank_process_group_runs(tmp_path):
    """The data-parallel path (gradient and KL all-reduce) runs under an initialised process group."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        lm = tiny_lm(len(TOK))
        history = train(config(tmp_path, total_iterations=1), policy=lm, env_kwargs=env_kwargs(lm))["history"]
        assert history[0]["policy/first_ratio_max_dev"] < 1e-5
    finally:
        dist.destroy_process_group()


def test_value_model_from_reward_model_round_trip(tmp_path):
    from textbandit.reward_model import RewardModel

    lm = tiny_lm(len(TOK))
    policy = PolicyWithValueHead(
        copy.deepcopy(lm), value_model=RewardModel.from_causal_lm(lm), pad_token_id=TOK.pad_token_id
    )
    policy.save_pretrained(tmp_path)
    again = PolicyWithValueHead.from_pretrained(tmp_path)
    assert again.value_head is None and isinstance(again.value_model, RewardModel)
    ids, resp = torch.tensor([[5, 6]]), torch.tensor([[7, 8, 1]])
    args = (ids, torch.ones_like(ids), resp, torch.ones_like(resp), 1.0)
    torch.testing.assert_close(policy(*args)[1], again(*args)[1])


def test_value_model_starts_from_the_envs_reward_model(tmp_path):
    from textbandit.reward_model import RewardModel

    lm = tiny_lm(len(TOK))
    kws = reward_model_kwargs(lm)
    env_rm = copy.deepcopy(kws["reward_model"].state_dict())
    policy = train(config(tmp_path, value_model="reward"), policy=lm, env_kwargs=kws)["policy"]
    assert isinstance(policy.value_model, RewardModel) and policy.value_model.config.n_embd == 16  # the env's
    trained = policy.value_model.state_dict()
    assert all(torch.equal(v, kws["reward_model"].state_dict()[k]) for k, v in env_rm.items())  # a copy is trained
    assert any(not torch.equal(v, trained[k]) for k, v in env_rm.items())
    with pytest.raises(ValueError, match="value_model='shared'"):  # KeywordReward is not a RewardModel
        train(config(tmp_path / "second", value_model="reward"), policy=lm, env_kwargs=env_kwargs(lm))


def test_resume_without_a_checkpoint_warns(tmp_path):
    lm = tiny_lm(len(TOK))
    with pytest.warns(UserWarning, match="no checkpoint"):
        history = train(config(tmp_path, resume=True, total_iterations=1), policy=lm, env_kwargs=env_kwargs(lm))[
            "history"
        ]
    assert [h["iteration"] for h in history] == [1]


def test_resume_drops_the_logged_iterations_after_the_checkpoint(tmp_path):
    import json

    lm = tiny_lm(len(TOK))
    kw = dict(total_iterations=4, save_every=2)
    with pytest.raises(Stop):  # checkpoint at 2, logs of 3 written
        train(config(tmp_path, **kw), policy=lm, env_kwargs=env_kwargs(lm), callback=stop_at(3))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "env/sc')  # a line torn by the kill
    train(config(tmp_path, resume=True, **kw), policy=lm, env_kwargs=env_kwargs(lm))
    for name in ("metrics.jsonl", "samples.jsonl"):
        steps = [json.loads(line)["step"] for line in (tmp_path / name).read_text().splitlines()]
        assert steps == [1, 2, 3, 4], name


def test_ptx_autocast_follows_the_policy():
    from agents.ppo.ptx import PretrainingBatches

    lm, seen = tiny_lm(len(TOK)), []
    lm.register_forward_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    for dtype in (None, torch.bfloat16):
        PretrainingBatches(["the cat sees a dog ."], TOK, 2, 16, "cpu", dtype).loss(lm, np.random.default_rng(0))
    assert seen == [False, True]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is only chosen on CUDA")
def test_ptx_runs_without_autocast_when_bf16_is_off(tmp_path, monkeypatch):
    from agents.ppo.ptx import PretrainingBatches

    seen, original = [], PretrainingBatches.loss

    def loss(self, lm, np_rng, rows=None):
        hook = lm.register_forward_hook(lambda *_: seen.append(torch.is_autocast_enabled("cuda")))
        try:
            return original(self, lm, np_rng, rows)
        finally:
            hook.remove()

    monkeypatch.setattr(PretrainingBatches, "loss", loss)
    lm = tiny_lm(len(TOK))
    train(
        config(tmp_path, device="cuda", bf16=False, ptx_coef=0.5, total_iterations=1),
        policy=lm,
        env_kwargs=env_kwargs(lm),
        ptx_texts=["the cat sees a dog ."] * 4,
    )
    assert seen and not any(seen)


def test_saved_policy_folders_hold_the_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    lm = tiny_lm(len(TOK))
    result = train(config(tmp_path, total_iterations=1), policy=lm, env_kwargs=env_kwargs(lm))
    result["policy"].save_pretrained(tmp_path / "final")  # as python -m agents.ppo and the pipeline do
    for folder in ("final", "checkpoint"):
        tok = AutoTokenizer.from_pretrained(str(tmp_path / folder))
        assert tok.get_vocab() == TOK.get_vocab() and tok.pad_token_id == TOK.pad_token_id, folder


# --- the KL reference is the policy's start ----------------------------------------------------


def _perturbed_sft(path):
    """The shipped SFT model with its weights moved: a starting point that is not the task's reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textbandit.task import load_task

    shipped = load_task("default").reference_model
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_pretrained(shipped)
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lm.save_pretrained(path)
    AutoTokenizer.from_pretrained(shipped).save_pretrained(path)
    return str(path)


def test_first_iteration_kl_is_zero_for_any_sft_model(tmp_path):
    sft = _perturbed_sft(tmp_path / "sft")
    kw = dict(
        task="default",
        batch_size=8,
        minibatch_size=4,
        total_iterations=1,
        update_epochs=1,
        max_new_tokens=None,
        missing_eos_penalty=1.0,
    )
    first = train(config(tmp_path / "own", sft_model=sft, **kw))["history"][0]
    assert abs(first["env/kl"]) < 1e-4  # the reference is the policy's start, not the shipped SFT model
    from textbandit.task import load_task

    other = train(config(tmp_path / "ref", sft_model=sft, reference_model=load_task("default").reference_model, **kw))
    assert other["history"][0]["env/kl"] > 1.0  # another reference only when asked for


def test_ppo_cli_trains_your_own_model_on_your_own_prompts_with_no_task(tmp_path):
    from agents.cli import main as cli_main
    from textbandit.reward_model import RewardModel

    tiny_lm(len(TOK)).save_pretrained(tmp_path / "sft")
    TOK.save_pretrained(tmp_path / "sft")
    RewardModel.from_causal_lm(tiny_lm(len(TOK), seed=3)).save_pretrained(tmp_path / "rm", TOK)
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    cli_main(
        [
            "ppo",
            "--task",
            "none",
            "--sft-model",
            str(tmp_path / "sft"),
            "--reward-model",
            str(tmp_path / "rm"),
            "--prompts",
            str(tmp_path / "prompts.jsonl"),
            "--out",
            str(tmp_path / "out"),
            "--batch-size",
            "4",
            "--minibatch-size",
            "2",
            "--total-iterations",
            "2",
            "--max-new-tokens",
            "5",
            "--device",
            "cpu",
            "--progress",
            "false",
            "--tensorboard",
            "false",
        ]
    )
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and abs(rows[0]["env/kl"]) < 1e-5
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()
    with pytest.raises(SystemExit):  # no prompts with no task: a usage error naming the flag
        cli_main(
            ["ppo", "--task", "none", "--sft-model", str(tmp_path / "sft"), "--reward-model", str(tmp_path / "rm")]
        )


def test_value_lr_scale_gives_the_value_function_its_own_learning_rate():
    from agents.common.schedule import set_lr
    from agents.ppo.learner import param_groups

    policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)), pad_token_id=TOK.pad_token_id)
    groups = param_groups(policy, 10.0)
    head = {id(p) for p in policy.value_head.parameters()}
    assert {id(p) for p in groups[1]["params"]} == head
    assert not head & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(policy.parameters()))
    optimizer = torch.optim.AdamW(groups, lr=1.0)
    set_lr(optimizer, 1e-4)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-3])
    with pytest.raises(ValueError, match="value_lr_scale"):
        PPOConfig(value_lr_scale=0)


def test_update_cuts_padding_columns_without_changing_outputs():
    """ppo_update feeds each minibatch only the columns its rows use (textbandit.layout.used_columns):
    the policy's log-probs, values and entropies on those rows are what the padded batch gives."""
    from textbandit.layout import left_pad, used_columns
    from textbandit.reward_model import RewardModel

    lm = tiny_lm(len(TOK))
    policy = PolicyWithValueHead(lm, value_model=RewardModel.from_causal_lm(lm), pad_token_id=TOK.pad_token_id)
    ids, pmask = left_pad([[5, 6], [7, 5, 6]], TOK.pad_token_id, width=6)  # the env pads to its fixed width
    resp = torch.tensor([[7, 8, 1, 0, 0, 0], [8, 1, 0, 0, 0, 0]])
    rmask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    cols, rcols = used_columns(pmask, rmask)
    assert (cols, rcols) == (slice(3, 6), slice(0, 3))
    full = policy(ids, pmask, resp, rmask, 1.0)
    cut = policy(ids[:, cols], pmask[:, cols], resp[:, rcols], rmask[:, rcols], 1.0)
    for a, b in zip(full, cut):
        torch.testing.assert_close(a[:, rcols], b, atol=1e-5, rtol=1e-5)
        assert not a[:, rcols.stop :].any()  # what was cut is padding, 0 in every output
