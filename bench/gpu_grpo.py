"""SFT and GRPO (locate, joint) steps on one GPU: step time, generation tokens/s and peak memory per row.

    torchrun --nproc_per_node 1 -m bench.gpu_grpo --stage sft|locate|joint [--mode hf|vllm] --model DIR \
        --data train.jsonl --out r.json [--key value ...]
    python -m bench.gpu_grpo --table r1.json r2.json ...

(run from the repository root, as modules: bench/rewards.py would shadow the rewards package).

bench/gpu.sh runs them on random-weight 3B and 7B models with the released processor. Each row is the stage
command itself, in-process, under the 7B recipes: ``sft`` is recipes/qwen2_5_vl_7b/sft.yaml as it stands
(pixel budget, crop policy, batch 2 x 4 accumulated, activation checkpointing, max_length); ``locate`` and
``joint`` are recipes/qwen2_5_vl_7b/grpo_locate.yaml with the SFT recipe's protocol (a model without a
``zoomin.json`` inherits none), the joint row as the joint stage (query 2 in context, its default rewards).
Every row uses sdpa attention (flash-attn is not on the lent machines), ``--steps`` steps and
``--completion-length`` tokens per turn; further ``--key value`` pairs go to the stage. The final save is
skipped (``finish`` is replaced): writing a 7B model would take most of a row's time.

Step time: from one optimizer step's end to the next (CUDA-synchronised, so loading, collation,
generation and update), the first step left out when there are more (it includes warm-up). Generation:
TRL's generation call timed (the joint stage's whole two-turn rollout; in vLLM mode it includes pushing
the new weights). Peak memory: torch's allocated and reserved peaks in the row's process. Random weights
rarely emit the end-of-turn token, so completions run to their token budget. Without CUDA the row runs
on the CPU in float32: the smoke test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml
from transformers import TrainerCallback
from transformers import trainer as hf_trainer
from trl import GRPOTrainer

import rl.grpo
import rl.sft
from rewards.registry import DEFAULT_REWARDS
from rl.distributed import end_distributed
from rl.joint import JointGRPOTrainer

SFT_RECIPE = "recipes/qwen2_5_vl_7b/sft.yaml"
GRPO_RECIPE = "recipes/qwen2_5_vl_7b/grpo_locate.yaml"
MODES = {
    "hf": ["--use_vllm", "false"],
    "vllm": ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.3",
             "--vllm_max_model_length", "8192"],
}
"""GRPO generation back ends. 8192 tokens hold the joint stage's context: a 1280-token global view, four
crops of up to 1024 tokens, text and both turns."""


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(TrainerCallback):
    """Marks the start of training and the end of every optimizer step (after the GPU has finished)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        _sync()
        self.marks = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs) -> None:
        _sync()
        self.marks.append(time.perf_counter())

    def timed(self) -> list[float]:
        """Seconds of each step, the first left out when there are more."""
        steps = [b - a for a, b in zip(self.marks, self.marks[1:])]
        return steps[1:] or steps


def timed_generation(calls: list[dict], cls: type) -> None:
    """Wrap ``cls._generate`` (TRL's, or the joint stage's two-turn rollout) to record its wall time and
    token counts per call."""
    generate = cls._generate

    def wrapper(self, prompts):
        _sync()
        start = time.perf_counter()
        result = generate(self, prompts)
        _sync()
        prompt_ids, completion_ids = result[0], result[1]
        calls.append({"seconds": time.perf_counter() - start, "completion_tokens": sum(map(len, completion_ids)),
                      "prompt_tokens": sum(map(len, prompt_ids)), "completions": len(completion_ids)})
        return result

    cls._generate = wrapper


def skip_save(trainer, write_info, title) -> None:
    """The stages' ``finish`` without saving the model, processor, metadata and curves: the rows measure steps."""
    end_distributed(trainer)


def stage_argv(a: argparse.Namespace, extra: list[str]) -> list[str]:
    """The stage command's arguments for this row."""
    common = ["--model_name_or_path", a.model, "--train_data", a.data, "--output_dir", str(Path(a.out).with_suffix("")),
              "--attn_implementation", "sdpa", "--max_steps", str(a.steps), "--logging_steps", "1",
              "--save_strategy", "no", "--report_to", "none", "--seed", "0"]
    if not torch.cuda.is_available():
        common += ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32"]
    if a.stage == "sft":
        return ["--config", SFT_RECIPE, *common, *extra]
    protocol = yaml.safe_load(Path(SFT_RECIPE).read_text())["protocol"]
    joint = []
    if a.stage == "joint":
        protocol["examine_in_context"] = True
        rewards = DEFAULT_REWARDS["joint"]
        joint = ["--stage", "joint", "--rewards", *rewards, "--reward_weights", *["1.0"] * len(rewards)]
    return ["--config", GRPO_RECIPE, *common, "--protocol", json.dumps(protocol), *joint,
            "--max_completion_length", str(a.completion_length), *MODES[a.mode], *extra]


def run(a: argparse.Namespace, extra: list[str]) -> None:
    calls: list[dict] = []
    if a.stage != "sft":
        timed_generation(calls, JointGRPOTrainer if a.stage == "joint" else GRPOTrainer)
    timer = StepTimer()
    hf_trainer.DEFAULT_CALLBACKS.append(timer)  # the stage commands build their trainers themselves
    rl.sft.finish = rl.grpo.finish = skip_save
    trainer = (rl.sft.main if a.stage == "sft" else rl.grpo.main)(stage_argv(a, extra))
    steps = timer.timed()
    gen = calls[1:] or calls
    logs = trainer.state.log_history
    seen = [e["num_tokens"] for e in logs if "num_tokens" in e]
    ratios = [e["sampling/importance_sampling_ratio/mean"] for e in logs if "sampling/importance_sampling_ratio/mean" in e]
    args = trainer.args
    result = {
        "stage": a.stage, "mode": "-" if a.stage == "sft" else a.mode, "model": Path(a.model).name,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
        "params_b": sum(p.numel() for p in trainer.model.parameters()) / 1e9,
        "steps": a.steps, "examples_per_step": args.per_device_train_batch_size * args.gradient_accumulation_steps,
        "step_s": statistics.median(steps), "step_s_min": min(steps), "step_s_max": max(steps),
        "tokens_per_step": statistics.median(b - a for a, b in zip([0, *seen], seen)) if seen else None,
        "generation_s": statistics.median(c["seconds"] for c in gen) if gen else None,
        "generation_tokens_per_s": sum(c["completion_tokens"] for c in gen) / sum(c["seconds"] for c in gen) if gen else None,
        "completion_tokens_per_call": statistics.median(c["completion_tokens"] for c in gen) if gen else None,
        "prompt_tokens_per_completion": statistics.median(c["prompt_tokens"] / c["completions"] for c in gen) if gen else None,
        # the on-policy check under vLLM: near 1 when the engine sampled from the trained context
        "importance_ratio_mean": statistics.median(ratios) if ratios else None,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else None,
    }
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


def table(paths: list[str]) -> None:
    results = [json.loads(Path(p).read_text()) for p in paths]
    print(f"{results[0]['gpu']}; random-weight Qwen2.5-VL with the released processor, the 7B recipes' pixel budget; "
          "step s: median (min-max) over the steps after the first; SFT: recipes/qwen2_5_vl_7b/sft.yaml, GRPO: "
          "grpo_locate.yaml (beta 0.04), completions run to their budget\n")
    print("| model (parameters) | stage | generation | examples/step | step s | tokens/step (TRL num_tokens) | generation s/call "
          "| generated tokens/s | prompt tokens/completion | peak allocated GiB | peak reserved GiB | importance ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for r in results:
        print(f"| {r['model']} ({r['params_b']:.2f}B) | {r['stage']} | {r['mode']} | {r['examples_per_step']} "
              f"| {r['step_s']:.2f} ({r['step_s_min']:.2f}-{r['step_s_max']:.2f}) | {cell(r['tokens_per_step'], '.0f')} "
              f"| {cell(r['generation_s'], '.2f')} | {cell(r['generation_tokens_per_s'], '.0f')} "
              f"| {cell(r['prompt_tokens_per_completion'], '.0f')} | {cell(r['peak_allocated_gib'], '.1f')} "
              f"| {cell(r['peak_reserved_gib'], '.1f')} | {cell(r['importance_ratio_mean'], '.3f')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["sft", "locate", "joint"], default="locate")
    ap.add_argument("--mode", choices=sorted(MODES), default="hf", help="GRPO generation")
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--out", help="result JSON")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--completion-length", type=int, default=128, help="GRPO: tokens per turn")
    ap.add_argument("--table", nargs="+", metavar="RESULT", help="print the markdown table of these results")
    a, extra = ap.parse_known_args()
    if a.table:
        table(a.table)
    elif a.model and a.data and a.out:
        run(a, extra)
    else:
        ap.error("give --model, --data and --out, or --table")


if __name__ == "__main__":
    main()
