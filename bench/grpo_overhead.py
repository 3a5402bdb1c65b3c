"""What our GRPO stages cost on top of TRL, and what a joint step costs against its two halves.

    .venv/bin/python bench/grpo_overhead.py [--model DIR] [--steps 12] [--repeats 3]

Four variants on the same model, data and settings, each in its own process (so peak RSS is its
own): a bare TRL ``GRPOTrainer`` given the locate dataset and the same reward functions, our
``locate`` stage, our ``examine`` stage with crops from the policy's own locate answers
(``--crop_source policy``), and our ``joint`` stage (two generated turns with zoomed crops in
between). The fair yardstick of a joint step is a locate step plus an examine step over the same
trajectories: both halves generate and train the same turns, with crops of the same policy boxes.
Seconds per step are TRL's own ``step_time`` averaged after the first two steps. The machine may be
shared, so repeats run the variants interleaved (rotated order) and the figures are medians with
the min-max spread. A random-weight model names no boxes, so the joint and policy-crop examine
stages then make no crops; pass a warm-started model (e.g. the demo's ``runs/demo/sft``) for
figures with crops.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Run as a script, this folder comes first on sys.path and bench/rewards.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = ["--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
            "--logging_steps", "1", "--per_device_train_batch_size", "8", "--num_generations", "4",
            "--max_completion_length", "48", "--save_strategy", "no", "--seed", "0", "--max_records", "64",
            "--protocol", '{"examine_in_context": true}']


def variant(name: str, model: str, data: str, out: str, steps: int) -> dict:
    """Run one variant in this process; return its mean step time and peak RSS."""
    argv = ["--model_name_or_path", model, "--train_data", data, "--output_dir", out, "--max_steps", str(steps),
            *SETTINGS]
    rollouts: list[float] = []
    if name == "bare":
        trainer = _bare_trl(argv)
    else:
        from rl import grpo

        stage = ["--stage", name, *(["--crop_source", "policy"] if name == "examine" else [])]
        if name == "examine":
            rollouts = _time_locate_rollouts()
        trainer = grpo.main([*argv, *stage])
    times = [e["step_time"] for e in trainer.state.log_history if "step_time" in e][2:]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"variant": name, "s_per_step": sum(times) / len(times), "peak_rss_mib": peak_mib}
    if rollouts:
        result["locate_rollout_s"] = sum(rollouts[2:]) / len(rollouts[2:])
    return result


def _time_locate_rollouts() -> list[float]:
    """Seconds of each query-1 rollout the policy-crop examine stage runs before its own generation.

    That rollout makes the crops; in a locate step plus an examine step over the *same* trajectories
    the locate step has already made them, so the fair examine half is the examine step without it.
    """
    import time

    from rl.trainer import ZoomInGRPOTrainer

    seconds: list[float] = []
    locate = ZoomInGRPOTrainer.locate

    def timed(self, rows):
        start = time.perf_counter()
        try:
            return locate(self, rows)
        finally:
            seconds.append(time.perf_counter() - start)

    ZoomInGRPOTrainer.locate = timed
    return seconds


def _bare_trl(argv: list[str]):
    """TRL's GRPOTrainer as a user would call it, with our dataset and reward functions."""
    from trl import GRPOTrainer

    from rewards.registry import DEFAULT_REWARDS, build_rewards
    from rl.config import ZoomInGRPOConfig, parse
    from rl.modeling import build_protocol, load_model, load_processor
    from zoomin.data import load_records
    from zoomin.formats import grpo_dataset

    run, model_args = parse(ZoomInGRPOConfig, argv)
    processor = load_processor(model_args.model_name_or_path)
    protocol = build_protocol("qwen2_5_vl", processor, run.protocol, model_args.model_name_or_path)
    records = load_records(run.train_data)[0][: run.max_records]
    funcs, weights = build_rewards(DEFAULT_REWARDS["locate"], None, protocol)
    run.reward_weights = weights
    trainer = GRPOTrainer(model=load_model(model_args), reward_funcs=funcs, args=run,
                          train_dataset=grpo_dataset(records, "locate", protocol), processing_class=processor)
    trainer.train()
    return trainer


VARIANTS = ("bare", "locate", "examine", "joint")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: a freshly built tiny Qwen2.5-VL)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3, help="runs of every variant, interleaved")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant and print JSON
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        with tempfile.TemporaryDirectory() as out:
            print("RESULT " + json.dumps(variant(args.variant, args.model, args.data, out, args.steps)))
        return

    from zoomin.synth import synthesize
    from zoomin.tiny import build_tiny_vlm

    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_vlm("qwen2_5_vl", "tiny", Path(tmp) / "model"))
        synthesize(Path(tmp) / "data", n=80, seed=0)
        for r in range(args.repeats):
            for name in VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]:
                runs[name].append(_run_variant(name, model, str(Path(tmp) / "data" / "train.jsonl"), args.steps))
    print(f"command: .venv/bin/python bench/grpo_overhead.py {' '.join(sys.argv[1:])}".rstrip())
    print("| variant | s/step, median (min-max) | peak RSS (MiB), median |\n|---|---|---|")
    for name, results in runs.items():
        times = [x["s_per_step"] for x in results]
        print(f"| {name} | {_spread(times)} | {statistics.median(x['peak_rss_mib'] for x in results):.0f} |")
    step = {name: [x["s_per_step"] for x in results] for name, results in runs.items()}
    examine_half = [x["s_per_step"] - x["locate_rollout_s"] for x in runs["examine"]]
    print(f"| examine without its query-1 rollout | {_spread(examine_half)} | |")
    halves = [j / (lo + ex) for j, lo, ex in zip(step["joint"], step["locate"], examine_half)]
    print(f"\nper repeat: locate / bare TRL = {_spread([lo / b for lo, b in zip(step['locate'], step['bare'])])} "
          f"(target <= 1.05); joint / (locate + examine without its query-1 rollout) = {_spread(halves)} "
          f"(target <= 1.05); joint / (locate + whole examine step) = "
          f"{_spread([j / (lo + ex) for j, lo, ex in zip(step['joint'], step['locate'], step['examine'])])}; "
          f"joint / locate = {_spread([j / lo for j, lo in zip(step['joint'], step['locate'])])}")


def _run_variant(name: str, model: str, data: str, steps: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--variant", name, "--model", model, "--data", data, "--steps", str(steps)],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        sys.exit(f"variant {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[0][7:])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
