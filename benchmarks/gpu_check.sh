#!/usr/bin/env bash
# GPU check of agents.ppo, prepared to run in one go on a GPU machine (budget: under 10 minutes on
# an H100/H200: the steps' timeouts add up to 575 s; a failed step does not stop the others):
#
#  1. PPO at GPT-2-small size against TRL's RLOOTrainer (benchmarks/ppo_throughput.py: same model,
#     prompts, batch, response length and update epochs, bf16 autocast, fused AdamW): samples/s,
#     tokens/s, the update step's MFU against a measured bf16 matmul peak, peak GPU memory;
#  2. the environment benchmark on the default task's models;
#  3. LoRA PPO at a 0.5B-parameter config (Qwen2-0.5B's shape, random weights; adapters of rank 16,
#     the frozen base in bf16 and the KL reference the base with the adapters off): tokens/s, memory;
#  4. the sampler (agents.sampling.sample: dynamic cache, static cache, static and compiled) against
#     Hugging Face generate (dynamic, static compiled), at GPT-2-small and 0.5B size: tokens/s, memory.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu      # every step at a tiny size on the CPU: a check of the script
# On a machine without internet, put wheels of the missing packages (gymnasium, trl, peft, datasets...)
# in .whl/ first: they are installed into /tmp/site. Results go to $OUT (default /tmp) as JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"  # this checkout's textbandit and agents (a script's sys.path lacks the cwd)
OUT="${OUT:-/tmp}"
failed=()
step() {  # step NAME TIMEOUT COMMAND...: run one step, note a failure, go on
    local name=$1 limit=$2
    shift 2
    echo "=== $name"
    timeout "$limit" "$@" || { echo "=== $name FAILED (exit $?)"; failed+=("$name"); }
}

if [ "${1:-}" = "--cpu" ]; then  # the same steps, tiny, on the CPU (minutes on 2 cores)
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    tiny=(--device cpu --batch 8 --minibatch 4 --epochs 1 --prompt-len 8 --response-len 8 --iterations 1 --warmup 1 --repeats 1)
    step "ppo vs TRL (tiny)" 300 python3 benchmarks/ppo_throughput.py --size task-small "${tiny[@]}" --json "$OUT/ppo_cpu.json"
    step "env (tiny)" 300 python3 benchmarks/env_throughput.py --models local --size tiny --num-envs 8 --steps 1 --repeats 1 --max-new-tokens 8 --device cpu
    step "LoRA ppo (tiny Qwen2)" 300 python3 benchmarks/ppo_throughput.py --size qwen2-tiny --lora-r 4 --trl false "${tiny[@]}"
    step "sampler (tiny)" 300 python3 benchmarks/sampler_throughput.py --size tiny --device cpu --batch 8 --new-tokens 8 --repeats 1
else
    python3 -c "import torch, textbandit; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
    python3 -c "import trl; print('trl', trl.__version__)" || echo "no TRL: timing agents.ppo alone"
    python3 -c "import peft; print('peft', peft.__version__)" || echo "no peft: the LoRA step will fail (pip install peft)"
    step "ppo vs TRL, GPT-2 small" 200 python3 benchmarks/ppo_throughput.py --size gpt2-small --device cuda \
        --batch 64 --minibatch 16 --epochs 2 --prompt-len 32 --response-len 64 \
        --iterations 4 --warmup 1 --repeats 1 --json "$OUT/ppo_throughput_gpu.json"
    step "env, default task" 45 python3 benchmarks/env_throughput.py --models default --max-new-tokens 24 --device cuda
    step "LoRA ppo, 0.5B" 180 python3 benchmarks/ppo_throughput.py --size qwen2-0.5b --lora-r 16 --trl false --device cuda \
        --batch 64 --minibatch 16 --epochs 2 --prompt-len 32 --response-len 64 \
        --iterations 3 --warmup 1 --repeats 1 --json "$OUT/ppo_lora_05b_gpu.json"
    step "sampler vs generate, GPT-2 small" 75 python3 benchmarks/sampler_throughput.py --size gpt2-small --device cuda \
        --batch 64 --prompt-len 32 --new-tokens 64 --json "$OUT/sampler_gpt2_gpu.json"
    step "sampler vs generate, 0.5B" 75 python3 benchmarks/sampler_throughput.py --size qwen2-0.5b --device cuda \
        --batch 64 --prompt-len 32 --new-tokens 64 --json "$OUT/sampler_05b_gpu.json"
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed steps: ${failed[*]}"
    exit 1
fi
echo "all steps passed"
