"""Rollout tokens/s and GRPO step time, vLLM colocate vs HF generate, on the `small` model on the CPU.

    OMP_NUM_THREADS=2 .venv-vllm/bin/python -m bench.vllm_cpu --out runs/vllm_cpu   # after `make vllm-env`

For each stage (locate; joint, with crops inserted) and each backend, one run of ``zoomin grpo``'s
own trainer (:func:`rl.grpo.build`) in its own process: the same data, seed and prompts, a warm-up
step, then ``--steps`` timed steps. Rollout tokens/s is the completion tokens of every generation
call over the time spent in them (``_generate_single_turn``, where both backends sit); step time is
TRL's ``step_time``. As in the vLLM test tier, a random model names no boxes, so for the joint stage
the *text* of each locate answer is scripted to name two (its sampled ids are kept). The engine's
start-up (about a minute, torch.compile) is reported apart. Prints a markdown table and writes
OUT/vllm_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = {"locate": [], "joint": ["--protocol", json.dumps({"examine_in_context": True})]}
BACKENDS = {"hf": [], "vllm": ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.5",
                               "--vllm_max_model_length", "2048"]}


def one(stage: str, backend: str, model: Path, data: Path, out: Path, steps: int) -> dict:
    """One timed run in this process."""
    sys.path.insert(0, str(REPO / "tests" / "vllm_cpu"))
    from cpu_weights import keep_plain_linear_weights  # the one CPU workaround, shared with the tests

    keep_plain_linear_weights()
    from trl import GRPOTrainer

    from rl import grpo
    from zoomin.protocol import ProtocolConfig

    if stage == "joint":
        answer = ProtocolConfig().render_locate("Region 1: smear.", [[100, 100, 400, 400], [500, 500, 900, 800]], "fake")
        generate = GRPOTrainer._generate

        def scripted(self, prompts):
            result = list(generate(self, prompts))
            result[3] = [[{"role": "assistant", "content": answer}] for _ in result[3]]
            return tuple(result)

        GRPOTrainer._generate = scripted
    started = time.perf_counter()
    trainer, _, _ = grpo.build([
        "--model_name_or_path", str(model), "--train_data", str(data), "--output_dir", str(out), "--stage", stage,
        *STAGES[stage], *BACKENDS[backend], "--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false",
        "--report_to", "none", "--logging_steps", "1", "--save_strategy", "no", "--seed", "0",
        "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_records", "16",
        "--max_completion_length", "64", "--learning_rate", "1e-4", "--max_steps", str(steps + 1)])
    build_s = time.perf_counter() - started
    calls: list[tuple[int, float, int]] = []
    single_turn = trainer._generate_single_turn

    def timed(*args, **kwargs):
        t = time.perf_counter()
        completion_ids, logprobs = single_turn(*args, **kwargs)
        calls.append((trainer.state.global_step, time.perf_counter() - t, sum(map(len, completion_ids))))
        return completion_ids, logprobs

    trainer._generate_single_turn = timed
    trainer.train()
    timed_calls = [c for c in calls if c[0] >= 1]  # step 0 is the warm-up
    step_times = [h["step_time"] for h in trainer.state.log_history if "step_time" in h][1:]
    return {"stage": stage, "backend": backend, "build_s": build_s, "steps": len(step_times),
            "rollout_tokens": sum(c[2] for c in timed_calls), "rollout_s": sum(c[1] for c in timed_calls),
            "tokens_per_s": sum(c[2] for c in timed_calls) / sum(c[1] for c in timed_calls),
            "step_s": statistics.median(step_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/vllm_cpu"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--one", nargs=2, metavar=("STAGE", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    model, data = args.out / "small", args.out / "data" / "train.jsonl"
    if args.one:
        stage, backend = args.one
        result = one(stage, backend, model, data, args.out / f"{stage}-{backend}", args.steps)
        (args.out / f"{stage}-{backend}.json").write_text(json.dumps(result, indent=1))
        return

    from zoomin.synth import synthesize
    from zoomin.tiny import build_tiny_vlm

    args.out.mkdir(parents=True, exist_ok=True)
    if not (model / "config.json").is_file():
        build_tiny_vlm("qwen2_5_vl", "small", model)
    if not data.is_file():
        synthesize(data.parent, n=16, seed=1)
    rows = []
    for stage in STAGES:
        for backend in BACKENDS:
            subprocess.run([sys.executable, "-m", "bench.vllm_cpu", "--out", str(args.out), "--steps", str(args.steps),
                            "--one", stage, backend], check=True, cwd=REPO, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
            rows.append(json.loads((args.out / f"{stage}-{backend}.json").read_text()))
    (args.out / "vllm_cpu.json").write_text(json.dumps(rows, indent=1))
    print("| stage | backend | rollout tokens/s | GRPO step (s, median) | trainer + engine build (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['backend']} | {r['tokens_per_s']:.0f} | {r['step_s']:.2f} | {r['build_s']:.0f} |")


if __name__ == "__main__":
    main()
