"""``python -m agents.ppo`` (or ``textbandit ppo``): train PPO on TextBandit-v0 from the command line.

Every ``PPOConfig`` field is a flag (``batch_size`` -> ``--batch-size``), documented by the
docstring under the field; booleans take ``true``/``false``. Example::

    python -m agents.ppo --sft-model runs/sft --reward-model runs/rm --total-iterations 50 \
        --kl-coef 0.05 --out runs/ppo
    torchrun --nproc_per_node 8 -m agents.ppo --sft-model runs/sft ...   # data-parallel on 8 GPUs
"""

from __future__ import annotations

import json

from agents.common.cli import parse_config
from agents.ppo.config import PPOConfig


def main(argv=None) -> dict:
    cfg = parse_config(PPOConfig, argv, description=__doc__.splitlines()[0], prog="textbandit ppo")
    from agents.ppo.learner import save_policy, train

    result = train(cfg)
    save_policy(result["policy"], f"{cfg.out}/final")
    last = result["history"][-1] if result["history"] else {}
    print(json.dumps({k: last[k] for k in ("env/score", "env/kl", "eval/gold_score") if k in last}))
    return result


if __name__ == "__main__":
    main()
