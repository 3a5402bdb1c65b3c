"""GRPO (locate) step rate on this machine: 1 vs 2 processes, DDP vs DeepSpeed ZeRO-2 vs ZeRO-3.

    .venv/bin/python bench/scaling.py [--steps 12] [--size tiny]

Each case is one `accelerate launch` with the shipped config (launch/accelerate/*.yaml) and
`--num_processes N`, on a random-weight VLM built locally and MagniFake-mini; every process gets the
same per-device batch (so 2 processes do twice the work per step). The step time is TRL's own
`step_time` (generation, rewards, loss and optimizer step), median over the steps after the first;
start-up (imports, DeepSpeed set-up) is not counted. One thread per process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from zoomin.synth import synthesize
from zoomin.tiny import build_tiny_vlm

REPO = Path(__file__).resolve().parents[1]
CASES = [(1, "ddp"), (2, "ddp"), (1, "zero2"), (2, "zero2"), (1, "zero3"), (2, "zero3")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(processes: int, config: str, args: list[str], out: Path) -> list[float]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"launch/accelerate/{config}.yaml",
               "--num_processes", str(processes), "--main_process_port", str(_free_port()),
               "-m", "rl.cli", "grpo", *args, "--output_dir", str(out)]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{processes} x {config} failed:\n{done.stderr[-4000:]}")
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [entry["step_time"] for entry in history if "step_time" in entry]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--size", default="tiny", help="zoomin.tiny size: tiny | small")
    ap.add_argument("--batch", type=int, default=8, help="completions per process and step")
    ap.add_argument("--completion-length", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_vlm("qwen2_5_vl", a.size, root / "model")
        synthesize(root / "data", n=40, seed=0)
        args = ["--model_name_or_path", str(model), "--train_data", str(root / "data" / "train.jsonl"),
                "--stage", "locate", "--attn_implementation", "eager", "--bf16", "false", "--report_to", "none",
                "--per_device_train_batch_size", str(a.batch), "--num_generations", "4",
                "--max_completion_length", str(a.completion_length), "--max_steps", str(a.steps),
                "--logging_steps", "1", "--save_strategy", "no", "--seed", "0"]
        rows = []
        for processes, config in CASES:
            times = run_case(processes, config, args, root / f"{config}-{processes}")
            step = statistics.median(times[1:])
            rows.append((processes, config, step, 1 / step, processes * a.batch / step))
            print(f"{processes} x {config}: {step:.3f} s/step", file=sys.stderr)

    print(f"`{' '.join(['.venv/bin/python', 'bench/scaling.py', *sys.argv[1:]])}`: qwen2_5_vl {a.size}, GRPO locate, "
          f"{a.batch} completions of {a.completion_length} tokens per process and step, {a.steps} steps (median after "
          f"the first), gloo, {os.cpu_count()} CPU cores, torch {torch.__version__}\n")
    print("| processes | engine | s/step | steps/s | completions/s |\n|---|---|---|---|---|")
    for processes, config, step, rate, completions in rows:
        print(f"| {processes} | {config} | {step:.3f} | {rate:.2f} | {completions:.1f} |")


if __name__ == "__main__":
    main()
