"""The README's "Your own agent" block runs as printed (fewer envs and iterations) and trains the policy."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from textbandit.task import load_task

README = Path(__file__).parents[1] / "README.md"


def agent_block() -> str:
    section = README.read_text(encoding="utf-8").split("## Your own agent", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


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
