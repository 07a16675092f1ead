"""The README's "Your own agent" block runs as printed (fewer envs and iterations) and trains the policy."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from textbandit.task import load_task

README = Path(__file__).parents[1] / "README.md"


def block(heading: str) -> str:
    """The first Python block under the README's ``## heading``."""
    section = README.read_text(encoding="utf-8").split(f"## {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def agent_block() -> str:
    return block("Your own agent")


@pytest.mark.parametrize("heading", ["Your own reward function", "A reward model from TRL"])
def test_the_new_examples_are_under_15_lines(heading):
    # lines of code as ruff formats them (CI checks that the blocks are): the blank lines around defs not counted
    assert len([line for line in block(heading).splitlines() if line.strip()]) < 15


@pytest.mark.skipif(load_task("default").reference_model is None, reason="the default task's models are not exported")
def test_readme_agent_block_runs_and_changes_the_policy(capsys):
    code = agent_block()
    assert "range(30)" in code and "num_envs=32" in code  # the knobs this test turns down
    namespace = {}
    exec(
        compile(code.replace("range(30)", "range(2)").replace("num_envs=32", "num_envs=8"), "README", "exec"), namespace
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["iteration 0", "iteration 1"]
    assert np.isfinite(namespace["done"]["score"]).all() and np.isfinite(namespace["done"]["kl"]).all()
    # after the first update the policy is no longer the frozen SFT copy: the second step's KL is not all 0
    assert np.abs(namespace["done"]["kl"]).max() > 0
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(load_task("default").reference_model)
    trained = namespace["lm"]
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), trained.parameters()))


@pytest.mark.skipif(load_task("default").reference_model is None, reason="the default task's models are not exported")
def test_readme_reward_function_block_runs(capsys):
    namespace = {}
    exec(compile(block("Your own reward function"), "README", "exec"), namespace)
    env, info = namespace["env"], namespace["info"]
    assert env.unwrapped.reward_model is None and env.unwrapped.reward_names == ["brevity", "names_a_color"]
    parts = info["score_parts"]
    assert info["score"] == pytest.approx(0.5 * parts[0] + np.nan_to_num(parts[1]), abs=1e-6)
    assert capsys.readouterr().out.strip().split()[0] == f"{info['score']}"


@pytest.mark.skipif(load_task("default").reference_model is None, reason="the default task's models are not exported")
def test_readme_trl_block_runs_and_the_env_scores_as_the_trained_model(tmp_path, monkeypatch, one_thread):
    pytest.importorskip("trl")
    monkeypatch.chdir(tmp_path)  # it writes runs/trl_rm
    code = block("A reward model from TRL")
    assert "max_steps=40" in code
    namespace = {}
    exec(compile(code.replace("max_steps=40", "max_steps=2"), "README", "exec"), namespace)
    env, model = namespace["env"], namespace["trainer"].model.eval()
    assert type(env.unwrapped.reward_model).__name__ == "GPT2ForSequenceClassification"
    from textbandit.wrappers import encode_actions

    obs, _ = env.reset(seed=0)
    action = encode_actions(env.unwrapped.tokenizer, ["red and blue ."], env.unwrapped.max_new_tokens)[0]
    info = env.step(action)[-1]
    n = int(info["response_mask"].sum())
    ids = np.concatenate([obs["input_ids"][obs["attention_mask"] == 1], action[:n]])  # one unpadded row
    with torch.no_grad():
        want = model.float()(input_ids=torch.as_tensor(ids[None])).logits[0, 0].item()
    assert info["score"] == pytest.approx(want, abs=1e-4)  # the env reads it as Hugging Face does


def launch_commands() -> list[str]:
    """The ``torchrun`` commands of the README's "Several GPUs and nodes" section, one string each."""
    section = README.read_text(encoding="utf-8").split("## Several GPUs and nodes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [c.strip() for b in blocks for c in b.replace("\\\n", " ").splitlines() if c.startswith("torchrun")]


def test_readme_launch_commands_parse():
    """Every single-node and multi-node launch command names a stage and flags that stage's parser takes."""
    import shlex

    from agents.common.cli import build_parser
    from agents.pipeline.config import PipelineConfig
    from agents.ppo.config import PPOConfig
    from agents.pretrain import PretrainArgs
    from agents.reward.config import RewardConfig
    from agents.sft.config import SFTConfig

    configs = {"sft": SFTConfig, "rm": RewardConfig, "ppo": PPOConfig, "pipeline": PipelineConfig}
    configs["pretrain"] = PretrainArgs
    commands = launch_commands()
    assert any("--standalone" in c for c in commands)
    assert any("--nnodes 2" in c and "--rdzv-endpoint" in c for c in commands)
    for command in commands:
        words = shlex.split(command)
        at = words.index("agents.cli")
        assert words[at - 1] == "-m", command
        stage, flags = words[at + 1], words[at + 2 :]
        build_parser(configs[stage]).parse_args(flags)  # exits (SystemExit) on a flag the stage lacks
