#!/usr/bin/env bash
# GPU check of agents.ppo: the throughput benchmark at GPT-2-small size on one CUDA GPU.
#
# Runs benchmarks/ppo_throughput.py (agents.ppo vs TRL's RLOOTrainer, same model, prompts, batch,
# response length and update epochs) with bf16 autocast and fused AdamW, and prints samples/s,
# tokens/s, the update step's MFU against a measured bf16 matmul peak, and peak GPU memory.
# Budget: under 10 minutes on an H100 (model build ~20 s, each trainer run ~1-2 min, 1 repeat).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python -c "import textbandit" 2>/dev/null || pip install -q -e . 2>/dev/null || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
python -c "import trl" 2>/dev/null || pip install -q "trl>=1.0" accelerate || echo "no TRL: timing agents.ppo alone"
OUT="${OUT:-/tmp}"
timeout 540 python benchmarks/ppo_throughput.py --size gpt2-small --device cuda \
    --batch 64 --minibatch 16 --epochs 2 --prompt-len 32 --response-len 64 \
    --iterations 3 --warmup 1 --repeats 1 --json "$OUT/ppo_throughput_gpu.json"
