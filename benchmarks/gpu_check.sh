#!/usr/bin/env bash
# GPU check of agents.ppo: the throughput benchmark at GPT-2-small size on one CUDA GPU.
#
# Runs benchmarks/ppo_throughput.py (agents.ppo vs TRL's RLOOTrainer, same model, prompts, batch,
# response length and update epochs) with bf16 autocast and fused AdamW, and prints samples/s,
# tokens/s, the update step's MFU against a measured bf16 matmul peak, and peak GPU memory.
# Then the environment benchmark on the same GPU. Budget: under 10 minutes on an H100/H200.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
# On a machine without internet, put wheels of the missing packages (gymnasium, trl, datasets...)
# in .whl/ first: they are installed into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
python3 -c "import textbandit" 2>/dev/null || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
python3 -c "import torch, textbandit; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
python3 -c "import trl; print('trl', trl.__version__)" || echo "no TRL: timing agents.ppo alone"
OUT="${OUT:-/tmp}"
timeout 420 python3 benchmarks/ppo_throughput.py --size gpt2-small --device cuda \
    --batch 64 --minibatch 16 --epochs 2 --prompt-len 32 --response-len 64 \
    --iterations 4 --warmup 1 --repeats 1 --json "$OUT/ppo_throughput_gpu.json"
timeout 120 python3 benchmarks/env_throughput.py --models default --max-new-tokens 24 --device cuda || true
