"""``zoomin demo`` / ``make demo``: the whole pipeline on the embedded default, on the CPU.

small local Qwen3-VL + the zoom-needed synthetic MagniFake-mini -> vision warm-up -> SFT warm
start -> GRPO (locate, then examine) -> evaluation after SFT and after GRPO (locate-only, two-stage
and random-crop accuracy) -> export -> detection pictures -> a comparison table. Every artefact lands
under one folder; the stage recipes are the ones in ``recipes/tiny``. One seed decides everything,
so two runs with the same seed give the same weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import fields
from importlib.util import find_spec
from pathlib import Path

from trl import ModelConfig

from rl import grpo, sft, warmup
from rl.card import Evaluation
from rl.config import RecipeError, ZoomInGRPOConfig, ZoomInSFTConfig
from rl.export import export, pick_examples
from zoomin.data import load_records
from zoomin.detector import ZoomInDetector
from zoomin.evaluate import evaluate, format_table
from zoomin.synth import synthesize_zoom_needed
from zoomin.tiny import build_tiny_vlm

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "tiny"
COMPARED = ("accuracy", "preliminary_accuracy", "random_crop_accuracy", "f1", "auroc", "iou", "iou_fake", "bleu2",
            "rougeL", "locate_format_error_rate", "examine_format_error_rate", "change_rate")


class _Stages:
    """Prints each stage with its wall time, so a 10-minute run shows where it is."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.time()

    def run(self, title: str, fn: Callable[[], object]) -> object:
        self.done += 1
        print(f"\n=== [{self.done}/{self.total}] {title} (t={time.time() - self.start:.0f}s)", flush=True)
        started = time.time()
        result = fn()
        print(f"--- {title}: {time.time() - started:.0f}s", flush=True)
        return result


STAGES = {"warmup": warmup.ZoomInWarmupConfig, "sft": ZoomInSFTConfig, "grpo_locate": ZoomInGRPOConfig,
          "grpo_examine": ZoomInGRPOConfig}
"""The demo's training stages (each runs ``recipes/tiny/<stage>.yaml``) and their config classes."""
ENVIRONMENT = ("torch", "transformers", "trl", "accelerate", "peft", "deepspeed")
"""Packages whose versions each demo summary records (``environment``)."""
SET_BY_THE_DEMO = ("model_name_or_path", "train_data", "eval_data", "output_dir", "seed")


def stage_overrides(settings: list[str]) -> dict[str, list[str]]:
    """``STAGE.KEY=VALUE`` settings as extra command-line arguments per stage, e.g.
    ``sft.learning_rate=1e-3`` -> ``{"sft": ["--learning_rate", "1e-3"]}``; a list value is written
    with spaces (``grpo_examine.reward_weights=1 1 0.25 0.25``). Checked against each stage's config
    before anything runs, so a typo fails now rather than after the stages before it."""
    extra: dict[str, list[str]] = {stage: [] for stage in STAGES}
    for setting in settings:
        target, sep, value = setting.partition("=")
        stage, dot, key = target.partition(".")
        if not (sep and dot and key and value.strip()):
            raise RecipeError(f"--set {setting!r}: expected STAGE.KEY=VALUE, e.g. sft.learning_rate=1e-3")
        if stage not in STAGES:
            raise RecipeError(f"--set {setting!r}: unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        if key in SET_BY_THE_DEMO:
            raise RecipeError(f"--set {setting!r}: the demo sets {key} itself (use --out and --seed)")
        known = {f.name for cls in (STAGES[stage], ModelConfig) for f in fields(cls)}
        if key not in known:
            raise RecipeError(f"--set {setting!r}: {stage} has no setting {key!r} (see recipes/tiny/{stage}.yaml "
                              f"and `zoomin {stage.partition('_')[0]} --help`)")
        extra[stage] += [f"--{key}", *value.split()]
    return extra


def train_stage(module, stage: str, model: Path, data: Path, out: Path, seed: int, *extra: str) -> None:
    """One stage of the demo: ``module``'s CLI (warmup, sft or grpo) on the tiny recipe named ``stage``."""
    module.main(["--config", str(RECIPES / f"{stage}.yaml"), "--model_name_or_path", str(model),
                 "--train_data", str(data), "--output_dir", str(out), "--seed", str(seed), *extra])


def grpo_stage(stage: str, source: Path, data: Path, out: Path, seed: int, *extra: str) -> None:
    """A GRPO stage of the demo from the model in ``source``, trained on ``data``'s train split, its
    reward scored on the test split before the first step and after the last (``reward_trend``)."""
    train_stage(grpo, stage, source, data / "train.jsonl", out / stage, seed, "--eval_data", str(data / "test.jsonl"),
                *extra)


def score(run_dir: Path, records: list, seed: int, progress: bool = True) -> dict:
    """A stage's metrics on the clean test split, as the demo reports them."""
    return evaluate(ZoomInDetector.from_pretrained(run_dir), records, batch_size=32, seed=seed,
                    progress=progress)["metrics"]["clean"]


FAMILY, IMAGE_SIDE, GLOBAL_TOKENS = "qwen3_vl", 256, 16
"""256 px images shown to a Qwen3-VL whose global view is 16 merged tokens (128 px): the processor
halves every image, which averages the one-pixel checkerboard away, while a crop of a 64 px cue
zoomed to 128 px keeps it. The zoom is then what the verdict needs. Qwen3-VL rather than Qwen2.5-VL
because its interleaved M-RoPE gives the width axis frequencies close to the height axis's
(Qwen2.5-VL's contiguous sections give columns the lowest ones), and its tower's absolute position
embeddings let the warm-up's position loss train; the language model names a cue's column once its
rotary base suits its small heads (``zoomin.tiny.ROPE_THETA``) and the locate answer names the cell
in words (``zoomin.synth.cue_note``). BENCHMARKS.md "Demo over seeds" has the steps."""
CUES = (1, 2)
"""Coarse cues per image; each fills one cell of a 4x4 grid, so boxes are cells a small language
model can learn to name."""


def run_demo(out: Path, n: int = 1200, seed: int = 0, grpo_steps: int | None = None,
             settings: list[str] = ()) -> int:
    """Run every stage under ``out``; ``seed`` reaches the data, the model's initialisation and every
    stage. ``settings`` (``STAGE.KEY=VALUE``, see ``stage_overrides``) change a stage's recipe, so an
    ablation of the demo is one rerunnable command; each stage records its arguments in its folder."""
    out = Path(out)
    data, model = out / "data", out / "model"
    extra = stage_overrides(list(settings))
    stages = _Stages(total=11)
    steps = [] if grpo_steps is None else ["--max_steps", str(grpo_steps)]
    train = data / "train.jsonl"

    stages.run("build the small VLM (random weights, real Qwen3-VL architecture)",
               lambda: build_tiny_vlm(FAMILY, "small", model, seed=seed, max_image_tokens=GLOBAL_TOKENS))
    stages.run(f"synthesise zoom-needed MagniFake-mini ({n} images)", lambda: print(synthesize_zoom_needed(
        data, n=n, seed=seed, side=IMAGE_SIDE, cues=CUES)))
    test_records, report = load_records(data / "test.jsonl", strict=True)
    print(report.summary())
    stages.run("vision warm-up (artifact maps of whole images and zoomed crops)", lambda: train_stage(
        warmup, "warmup", model, train, out / "warmup", seed, "--eval_data", str(data / "test.jsonl"),
        *extra["warmup"]))
    stages.run("SFT warm start", lambda: train_stage(sft, "sft", out / "warmup", train, out / "sft", seed,
                                                     *extra["sft"]))
    stages.run("GRPO locate", lambda: grpo_stage("grpo_locate", out / "sft", data, out, seed, *steps,
                                                 *extra["grpo_locate"]))
    stages.run("GRPO examine", lambda: grpo_stage("grpo_examine", out / "grpo_locate", data, out, seed, *steps,
                                                  *extra["grpo_examine"]))
    results: dict[str, dict] = {}
    for name, run_dir in (("sft", out / "sft"), ("sft+grpo", out / "grpo_examine")):
        results[name] = stages.run(f"evaluate {name} on the test split",
                                   lambda run_dir=run_dir: score(run_dir, test_records, seed))
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    checkpoint = stages.run("export the two-stage checkpoint (with its evidence pictures and a Space)", lambda: export(
        out / "grpo_examine", out / "checkpoint", evaluation=Evaluation("MagniFake-mini", "test", results["sft+grpo"]),
        datasets=["MagniFake-mini"], examples=pick_examples(test_records, 4), space=find_spec("gradio") is not None,
        overwrite=True))
    stages.run("detect on test images (pictures in detect/)", lambda: _detect(checkpoint, test_records[:6], out))
    trends = {stage: reward_trend(out / f"grpo_{stage}") for stage in ("locate", "examine")}
    (out / "reward_trends.json").write_text(json.dumps(trends, indent=2))
    table = _comparison(results, out, trends)
    stages.run("summary", lambda: print(table))
    print(f"\nEverything is under {out}/ (checkpoint/, metrics.json, summary.md, detect/, */curves.png)")
    print(f"Try the checkpoint in a browser: zoomin app --checkpoint {checkpoint}")
    return 0


def _detect(checkpoint: Path, records: list, out: Path) -> None:
    from zoomin.viz import save

    detector = ZoomInDetector.from_pretrained(checkpoint)
    folder = out / "detect"
    folder.mkdir(parents=True, exist_ok=True)
    for record, result in zip(records, detector.detect([r.load_image() for r in records])):
        save(record.load_image(), result, folder / f"{record.id}.png")
        print(f"{record.id}: label={record.label} verdict={result.verdict} score={result.score:.2f} "
              f"boxes={[[round(v) for v in b] for b in result.boxes]}")


def reward_trend(run_dir: Path) -> tuple[float, float]:
    """A GRPO stage's reward on its held-out prompts before its first step and after its last (TRL's
    evaluation, sampled and scored as in training): the same prompts both times, so the difference
    is what the stage did, not which training prompts happened to come first or last."""
    rewards = [log["eval_reward"] for log in json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
               if "eval_reward" in log]
    if len(rewards) < 2:
        raise ValueError(f"{run_dir}: no evaluation before and after training in trainer_state.json "
                         "(the stage's recipe sets eval_on_start and an eval_strategy)")
    return rewards[0], rewards[-1]


def _comparison(results: dict[str, dict], out: Path, trends: dict[str, tuple[float, float]]) -> str:
    lines = ["| metric | SFT only | SFT + GRPO |", "|---|---|---|"]
    for key in COMPARED:
        a, b = results["sft"].get(key), results["sft+grpo"].get(key)
        lines.append(f"| {key} | {_fmt(a)} | {_fmt(b)} |")
    for stage, (first, last) in trends.items():
        lines.append(f"| GRPO {stage} reward on held-out prompts, before / after | {_fmt(first)} | {_fmt(last)} |")
    lines += ["", "Full metrics: metrics.json. Evaluation table of the final checkpoint:", "",
              format_table({"clean": results["sft+grpo"]}), "", f"Packages: {environment()}."]
    table = "\n".join(lines)
    (out / "summary.md").write_text("# ZoomIn demo on MagniFake-mini\n\n" + table + "\n")
    return table


def environment() -> str:
    """The versions of the packages that decide the demo's numbers: figures from two environments can
    differ with the same code and seed (a newer transformers moved the SFT models' IoU by up to 0.05)."""
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ENVIRONMENT)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
