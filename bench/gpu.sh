#!/bin/bash
# GRPO on one GPU with a random-weight Qwen2.5-VL of 3B size built here (nothing is downloaded):
# generation tokens/s and step time with HF generate and, where vLLM is installed, vLLM colocate.
#
#   bash bench/gpu.sh [WORKDIR]        # default /tmp/zoomin-gpu-bench; PYTHON=... to pick the interpreter
#
# Needs the project's dependencies (and vllm for the second row); runs the bench modules from the
# repository root (python -m bench.X), so the package need not be installed. Prints a markdown table; the
# per-mode results stay in WORKDIR/*.json. Takes about 5-10 minutes on one H100/H200.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/zoomin-gpu-bench}
python=${PYTHON:-python}
mkdir -p "$work"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[[ -f $work/model/config.json ]] || "$python" -m bench.random_vlm --size 3b --out "$work/model" --device cuda
[[ -f $work/data/train.jsonl ]] || "$python" -m rl.cli data synth --out "$work/data" --n 80

modes=(hf)
if "$python" -c "import vllm" 2>/dev/null; then modes+=(vllm); else echo "vllm is not installed: HF generation only" >&2; fi
results=()
for mode in "${modes[@]}"; do
    # torchrun, even for one process: vLLM's colocate mode joins the process group it sets up.
    "$python" -m torch.distributed.run --nproc_per_node 1 --master_port $((29500 + RANDOM % 1000)) \
        -m bench.gpu_grpo --mode "$mode" --model "$work/model" --data "$work/data/train.jsonl" --out "$work/$mode.json"
    results+=("$work/$mode.json")
done
"$python" -m bench.gpu_grpo --table "${results[@]}"
