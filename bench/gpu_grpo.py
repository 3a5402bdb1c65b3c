"""GRPO (locate) on one GPU: generation tokens/s and step time, HF generate or vLLM colocate.

    torchrun --nproc_per_node 1 -m bench.gpu_grpo --mode hf|vllm --model DIR --data train.jsonl --out r.json
    python -m bench.gpu_grpo --table r-hf.json r-vllm.json

(run from the repository root, as modules: bench/rewards.py would shadow the rewards package).

bench/gpu.sh runs both on a random-weight 3B model. The run is `zoomin grpo` itself, in-process, with
TRL's generation call timed (CUDA-synchronised; in vLLM mode it includes pushing the new weights to
vLLM). The step time is TRL's own `step_time`. Both are medians over the steps after the first.
Random weights rarely emit the end-of-turn token, so completions run to their token budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from trl import GRPOTrainer

from rl.grpo import main as grpo

MODES = {
    "hf": [],
    "vllm": ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.3",
             "--vllm_max_model_length", "4096"],
}


def _sync() -> None:
    if torch.cuda.is_available():  # without a GPU the script still runs (slowly): a smoke test
        torch.cuda.synchronize()


def timed_generation(calls: list[dict]):
    """Wrap TRL's generation step to record its wall time and token counts per call."""
    generate = GRPOTrainer._generate

    def wrapper(self, prompts):
        _sync()
        start = time.perf_counter()
        result = generate(self, prompts)
        _sync()
        prompt_ids, completion_ids = result[0], result[1]
        calls.append({"seconds": time.perf_counter() - start, "completion_tokens": sum(map(len, completion_ids)),
                      "prompt_tokens": sum(map(len, prompt_ids)), "completions": len(completion_ids)})
        return result

    GRPOTrainer._generate = wrapper


def run(a: argparse.Namespace) -> None:
    calls: list[dict] = []
    timed_generation(calls)
    out = Path(a.out).with_suffix("")
    trainer = grpo(["--model_name_or_path", a.model, "--train_data", a.data, "--output_dir", str(out),
                    "--stage", "locate", "--dtype", "bfloat16", "--bf16", "true", "--attn_implementation", "sdpa",
                    "--per_device_train_batch_size", str(a.batch), "--num_generations", "4",
                    "--max_completion_length", str(a.completion_length), "--max_steps", str(a.steps),
                    "--beta", "0.04", "--learning_rate", "1e-6", "--logging_steps", "1", "--save_strategy", "no",
                    "--report_to", "none", "--seed", "0", *MODES[a.mode],
                    *([] if torch.cuda.is_available() else ["--use_cpu", "true", "--bf16", "false"])])
    steps = [e["step_time"] for e in trainer.state.log_history if "step_time" in e][1:]
    gen = calls[1:]
    result = {
        "mode": a.mode, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
        "params_b": sum(p.numel() for p in trainer.model.parameters()) / 1e9,
        "steps": a.steps, "completions_per_step": a.batch,
        "completion_tokens_per_step": statistics.median(c["completion_tokens"] for c in gen),
        "prompt_tokens_per_completion": statistics.median(c["prompt_tokens"] / c["completions"] for c in gen),
        "generation_s": statistics.median(c["seconds"] for c in gen),
        "generation_tokens_per_s": sum(c["completion_tokens"] for c in gen) / sum(c["seconds"] for c in gen),
        "step_s": statistics.median(steps),
        # the on-policy check under vLLM: near 1 when the engine sampled from the trained context
        "importance_ratio_mean": statistics.median(ratios) if (ratios := [
            e["sampling/importance_sampling_ratio/mean"] for e in trainer.state.log_history
            if "sampling/importance_sampling_ratio/mean" in e]) else None,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0,
    }
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def table(paths: list[str]) -> None:
    results = [json.loads(Path(p).read_text()) for p in paths]
    first = results[0]
    print(f"{first['gpu']}, random-weight Qwen2.5-VL ({first['params_b']:.2f}B parameters), GRPO locate, {first['completions_per_step']} completions "
          f"of up to {first['completion_tokens_per_step'] / first['completions_per_step']:.0f} tokens per step, "
          f"~{first['prompt_tokens_per_completion']:.0f} prompt tokens each, beta 0.04, medians over steps "
          f"2-{first['steps']}\n")
    print("| generation | generation s/step | generated tokens/s | step s | peak torch GPU memory GiB | importance ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        ratio = "-" if r.get("importance_ratio_mean") is None else f"{r['importance_ratio_mean']:.3f}"
        print(f"| {r['mode']} | {r['generation_s']:.2f} | {r['generation_tokens_per_s']:.0f} | {r['step_s']:.2f} "
              f"| {r['peak_gpu_memory_gib']:.1f} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=sorted(MODES))
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--out", help="result JSON")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16, help="completions per step (4 per prompt)")
    ap.add_argument("--completion-length", type=int, default=256)
    ap.add_argument("--table", nargs="+", metavar="RESULT", help="print the markdown table of these results")
    a = ap.parse_args()
    if a.table:
        table(a.table)
    elif a.mode and a.model and a.data and a.out:
        run(a)
    else:
        ap.error("give --mode, --model, --data and --out, or --table")


if __name__ == "__main__":
    main()
