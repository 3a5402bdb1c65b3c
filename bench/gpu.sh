#!/bin/bash
# SFT and GRPO (locate, joint) steps on one GPU with random-weight Qwen2.5-VL at 7B and 3B size, built here with
# the released processor files and the 7B recipe's pixel budget (nothing is downloaded): step time, generation
# tokens/s and peak memory per row, with HF generation and, where vLLM is installed, vLLM colocate too.
#
#   bash bench/gpu.sh [WORKDIR]              # default /tmp/zoomin-gpu-bench
#   SMOKE=1 bash bench/gpu.sh WORKDIR        # the same path on the CPU at tiny widths, one step a row
#
# Environment: PYTHON (default python3), SIZES ("7b 3b"), STAGES ("sft locate joint"), STEPS (3), COMPLETION
# (128 tokens per GRPO turn), DEADLINE (540 s: a row that would start later is skipped and a running row is
# stopped there, so the command ends inside the lent machines' 10 minutes), PROCESSOR (the released
# Qwen2.5-VL-7B-Instruct processor files; default .gpu-bench/qwen2_5_vl_7b_instruct, else
# ../shared/fixtures/qwen-processors/qwen2_5_vl_7b_instruct), WHEELS (default .gpu-bench/wheels).
#
# The lent GPU machines (Python 3.12, torch 2.11, transformers 5.17, peft, accelerate, pyarrow, pandas) reach no
# package registry and have no trl, datasets or deepspeed; this project needs transformers >= 5.20. Carry the
# missing packages as wheels (pure Python but kernels; 19 MB) and the processor files (../shared does not
# travel), all in one ignored folder:
#
#   echo /.gpu-bench/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .gpu-bench/wheels trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
#       transformers==5.25.0 huggingface-hub==2.4.0 kernels==0.19.1
#   cp -r ../shared/fixtures/qwen-processors/qwen2_5_vl_7b_instruct .gpu-bench/
#
# and run `PYTHONUNBUFFERED=1 bash bench/gpu.sh 2>&1 | tee $OUT/gpu.log` carrying .gpu-bench. When WHEELS exists
# the script installs them with `pip install --no-index --no-deps --target WORKDIR/site` and puts that first
# on PYTHONPATH; then it checks that the stages import, so a missing package stops it in seconds.
#
# The 7B rows train every parameter with AdamW in bf16 (about 8 bytes a parameter before activations, 66 GB;
# GRPO adds the frozen reference model, beta 0.04): expect them to need the H200. Each row runs in its own
# torchrun process (vLLM's colocate mode joins the process group it sets up) and writes WORKDIR/<size>-<stage>-
# <mode>.json; the table at the end lists the rows that finished.
set -uo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/zoomin-gpu-bench}
python=${PYTHON:-python3}
sizes=${SIZES:-7b 3b}
stages=${STAGES:-sft locate joint}
steps=${STEPS:-3}
deadline=${DEADLINE:-540}
wheels=${WHEELS:-.gpu-bench/wheels}
processor=${PROCESSOR:-}
if [[ -z $processor ]]; then
    for p in .gpu-bench/qwen2_5_vl_7b_instruct ../shared/fixtures/qwen-processors/qwen2_5_vl_7b_instruct; do
        [[ -f $p/preprocessor_config.json ]] && processor=$p && break
    done
fi
[[ -n $processor ]] || { echo "no released processor files: set PROCESSOR or copy them to .gpu-bench/" >&2; exit 1; }
mkdir -p "$work"

if [[ -d $wheels ]]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
        "$wheels"/*.whl || exit 1
    export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$python" -c "import trl, datasets, transformers, torch, rl.sft, rl.grpo, rl.joint
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)" || exit 1

build=(--device cuda)
row=(--steps "$steps" --completion-length "${COMPLETION:-128}")
if [[ -n ${SMOKE:-} ]]; then
    build=(--device cpu --widths tiny)
    row=(--steps 1 --completion-length 16 --per_device_train_batch_size 1 --gradient_accumulation_steps 4)
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
[[ -f $work/data/train.jsonl ]] || "$python" -c "import sys; from pathlib import Path; from bench.real_path import photographs
photographs(Path(sys.argv[1]), 16)" "$work/data" || exit 1

modes=(hf)
if "$python" -c "import vllm" 2>/dev/null; then modes+=(vllm); else echo "vllm is not installed: HF generation only" >&2; fi
results=()
for size in $sizes; do
    model=$work/model-$size
    if [[ ! -f $model/config.json ]]; then
        "$python" -m bench.random_vlm --size "$size" --out "$model" --processor "$processor" \
            --budget recipes/qwen2_5_vl_7b/sft.yaml "${build[@]}" || continue
    fi
    for stage in $stages; do
        for mode in "${modes[@]}"; do
            [[ $stage == sft && $mode != hf ]] && continue
            left=$((deadline - SECONDS))
            if ((left < 30)); then echo "skipped $size $stage $mode: ${SECONDS}s of ${deadline}s used" >&2; continue; fi
            out=$work/$size-$stage-$mode.json
            rm -f "$out"
            echo "== $size $stage $mode (${SECONDS}s)" >&2
            timeout "$left" "$python" -m torch.distributed.run --nproc_per_node 1 --master_port $((29500 + RANDOM % 1000)) \
                -m bench.gpu_grpo --stage "$stage" --mode "$mode" --model "$model" --data "$work/data/train.jsonl" \
                --out "$out" "${row[@]}" || echo "row $size $stage $mode failed or ran out of time" >&2
            [[ -f $out ]] && results+=("$out")
        done
    done
done
((${#results[@]})) && "$python" -m bench.gpu_grpo --table "${results[@]}"
