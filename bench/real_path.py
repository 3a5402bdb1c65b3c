"""The real path on the CPU: image tokens and SFT / GRPO step time at three pixel budgets, and the zoom factor
of the crop policies, with the released Qwen processors.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.real_path --out runs/real_path

(run from the repository root, as a module: bench/rewards.py would shadow the rewards package).

The toy path never crosses the boundaries a real run does: a released processor turns a 3 MP photograph
into thousands of image tokens, and what a crop shows depends on the budget of the global view. This
bench builds random-weight models of the real config classes with the released processor files
(:func:`zoomin.tiny.build_released_vlm`: Qwen2.5-VL-7B's and Qwen3-VL-4B's vocabulary, template, patching
and bounds; two small layers) and a MagniFake folder of 2-4 MP JPEG photographs (smooth colour fields and
shapes with sensor-like noise; 1-3 boxes each, 40 px to 40% of the short side). Then:

1. image tokens per image, the longest crop and the longest SFT examples at each budget;
2. seconds per step of 3 steps (1 at the largest budget) of the real ``zoomin sft`` and ``zoomin grpo``
   (locate) at each budget, each run in its own process (so its peak memory is its own; a run whose
   result exists is read, ``--rerun`` forces it), timed by a callback from one ``on_step_end`` to the next
   (the first from ``on_train_begin``: it includes the first batch's loading);
3. the zoom factor (:func:`zoomin.zoom.zoom_factor` over each annotated box's crop window) of the tiny
   recipe's crop policy on zoom-needed MagniFake-mini, and of the scale recipes' policies (their YAML
   ``protocol`` blocks) and the old fixed 112 px crops on the 2-4 MP photographs; and the scale recipes'
   zoom by photograph size for a native-size window and for the whole image.

Prints one markdown table per measurement and writes them to OUT/real_path.md, the numbers to OUT/*.json.
Budgets are in merged image tokens per image (``--budgets``); 16384 is the released processors' own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qwen-processors"
RELEASED = {"qwen2_5_vl": "qwen2_5_vl_7b_instruct", "qwen3_vl": "qwen3_vl_4b_instruct"}
"""Each family's released processor folder (Qwen3-VL-8B ships the 4B's processor)."""
SCALE_RECIPES = {"qwen2_5_vl": "recipes/qwen2_5_vl_7b/sft.yaml", "qwen3_vl": "recipes/qwen3_vl_8b/sft.yaml"}
TINY_CROP_RECIPE = "recipes/tiny/warmup.yaml"
"""The demo's crop policy is set by its warm-up, which saves it for every later stage."""
SIZES = [(2048, 1536), (1536, 2048), (1920, 1080), (2304, 1728), (1600, 1600), (2400, 1600), (1080, 1920),
         (1800, 1350)]
"""2.1 to 4.0 MP, landscape, portrait and square, as phone and camera photographs come."""


def photo(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A photograph-like image of ``size`` from numpy and PIL alone (the GPU machines have no scikit-image):
    a smooth colour field, a dozen soft-edged shapes and fine sensor-like noise."""
    w, h = size
    field = rng.integers(0, 256, (max(2, h // 256), max(2, w // 256), 3), dtype=np.uint8)
    image = Image.fromarray(field).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.2) * min(w, h)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    base = np.asarray(image.filter(ImageFilter.GaussianBlur(2)), dtype=np.int16)
    return Image.fromarray(np.clip(base + rng.normal(0, 4, (h, w, 1)).round(), 0, 255).astype(np.uint8))


def photographs(root: Path, n: int, seed: int = 0) -> Path:
    """A MagniFake ``train.jsonl`` over ``n`` JPEG photographs (:func:`photo`) of :data:`SIZES` (cycled),
    alternately fake and real, each with 1-3 boxes whose longest side is log-uniform from 40 px to 40% of the
    short side (aspect 1:2 to 2:1)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo((w, h), rng).save(root / f"photo{i:03d}.jpg", quality=90)
        fake = i % 2 == 0
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            longest = math.exp(rng.uniform(math.log(40), math.log(0.4 * min(w, h))))
            aspect = math.exp(rng.uniform(math.log(0.5), math.log(2)))
            bw, bh = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append([round(x1, 1), round(y1, 1), round(x1 + bw, 1), round(y1 + bh, 1)])
        note = "smeared texture" if fake else "natural grain"
        rows.append({"id": f"photo{i:03d}", "image": f"photo{i:03d}.jpg", "label": "fake" if fake else "real",
                     "boxes": boxes, "region_notes": [note] * len(boxes),
                     "explanation": " ".join(f"Region {k} shows {'a ' if fake else ''}{note}."
                                             for k in range(1, len(boxes) + 1))})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "train.jsonl"


def released_models(out: Path) -> dict[str, Path]:
    """Each family's random-weight model with its released processor, built once."""
    from zoomin.tiny import build_released_vlm

    models = {}
    for family, folder in RELEASED.items():
        models[family] = out / family
        if not (models[family] / "config.json").is_file():
            build_released_vlm(FIXTURES / folder, models[family])
    return models


def codec_of(family: str, model: Path, tokens: int | None = None, **bounds: int):
    """The model's codec (released bounds), its ``max_pixels`` set to ``tokens`` merged tokens, or ``bounds``."""
    from transformers import AutoImageProcessor

    from zoomin.codecs import BoxCodec

    codec = BoxCodec.from_processor(family, AutoImageProcessor.from_pretrained(model))
    if tokens is not None:
        bounds["max_pixels"] = tokens * codec.factor**2
    return replace(codec, **bounds)


def spread(values: list[float], digits: int = 2) -> str:
    """``median (min-max)``, the form every table here uses."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def markdown(header: list[str], rows: list[list[object]]) -> list[str]:
    """A markdown table's lines: the header, its rule and one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def token_table(models: dict[str, Path], data: Path, budgets: list[int]) -> tuple[str, list[dict]]:
    """Image tokens of the global views, the longest crop and the longest SFT examples, per family and budget
    (the default crop policy: native crops from 448 px, bounded by the budget alone), and under each scale
    recipe's own protocol."""
    from transformers import AutoProcessor

    from rl.preflight import Lengths, sft_lengths
    from zoomin.data import load_records
    from zoomin.protocol import CropPolicy, ProtocolConfig

    records, _ = load_records(data)
    rows = []
    for family, model in models.items():
        processor = AutoProcessor.from_pretrained(model)
        recipe = yaml.safe_load(Path(SCALE_RECIPES[family]).read_text())["protocol"]
        protocols = [(str(t), ProtocolConfig(codec=codec_of(family, model, t))) for t in budgets]
        codec = codec_of(family, model, **recipe["codec"])
        protocols.append((f"{codec.max_image_tokens}, {SCALE_RECIPES[family]}'s crops",
                          ProtocolConfig(codec=codec, crop=CropPolicy(**recipe["crop"]))))
        for tokens, protocol in protocols:
            protocol.codec.apply_to(processor)
            lengths = Lengths(protocol, processor)
            per_image = [protocol.codec.image_tokens(r.image_size) for r in records]
            longest = sft_lengths(records, lengths, lengths.answer_tokens(records))
            rows.append({"family": family, "budget": tokens, "max_pixels": protocol.codec.max_pixels,
                         "median": statistics.median(per_image), "max": max(per_image), "crop_max": lengths.crop_bound,
                         "locate": longest["locate"][0], "examine": longest["examine"][0]})
    lines = [f"{len(records)} photographs of 2.1-4.0 MP, {sum(len(r.boxes) for r in records)} boxes; default crop "
             "policy (native, magnified to 448 px, bounded by the budget); the recipe rows use their own\n"]
    lines += markdown(["family", "budget (image tokens)", "max_pixels", "global view tokens, median", "max",
                       "one crop at most", "longest SFT locate example", "longest SFT examine example"],
                      [[r["family"], r["budget"], f"{r['max_pixels']:,}", f"{r['median']:.0f}", r["max"], r["crop_max"],
                        r["locate"], r["examine"]] for r in rows])
    return "\n".join(lines), rows


def train(stage: str, model: str, data: str, tokens: int, steps: int, out: str) -> dict:
    """``steps`` steps of ``zoomin sft`` or ``zoomin grpo`` (locate) on the tiny recipes at ``tokens`` per image;
    seconds per step (wall and CPU), tokens per step (TRL's ``num_tokens``) and this process's peak resident memory."""
    from transformers import TrainerCallback, trainer

    from rl.config import model_family

    class StepTimer(TrainerCallback):
        """Wall and CPU clocks at the start of training and at each optimizer step's end: a step's time then
        covers its loading, collation, generation and update."""

        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs) -> None:
            self.marks = [(time.perf_counter(), time.process_time())]

        def on_step_end(self, args, state, control, **kwargs) -> None:
            self.marks.append((time.perf_counter(), time.process_time()))

    family = model_family(model)
    protocol = json.dumps({"codec": {"max_pixels": tokens * codec_of(family, Path(model)).factor ** 2}})
    common = ["--model_name_or_path", model, "--train_data", data, "--output_dir", out, "--max_steps", str(steps),
              "--protocol", protocol, "--attn_implementation", "sdpa", "--freeze_vision", "false",
              "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1"]
    timer = StepTimer()
    trainer.DEFAULT_CALLBACKS.append(timer)  # the stage commands build their trainers themselves
    if stage == "sft":
        from rl.sft import main as sft

        run = sft(["--config", "recipes/tiny/sft.yaml", *common, "--per_device_train_batch_size", "1",
                   "--locate_repeats", "1", "--max_length", "65536"])
    else:
        from rl.grpo import main as grpo

        run = grpo(["--config", "recipes/tiny/grpo_locate.yaml", *common, "--num_generations", "2",
                    "--per_device_train_batch_size", "2", "--max_completion_length", "64", "--eval_strategy", "no",
                    "--eval_on_start", "false", "--eval_data", ""])
    seen = [e["num_tokens"] for e in run.state.log_history if "num_tokens" in e]
    return {"stage": stage, "family": family, "budget": tokens,
            "step_s": [b[0] - a[0] for a, b in zip(timer.marks, timer.marks[1:])],
            "step_cpu_s": [b[1] - a[1] for a, b in zip(timer.marks, timer.marks[1:])],
            "tokens_per_step": [b - a for a, b in zip([0, *seen], seen)],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def step_table(results: list[dict]) -> str:
    """Seconds per step as wall time and as this process's CPU time: the machine is shared, and CPU time is
    what another run on one free core would take."""
    lines = ["One process per run, 1 thread; SFT: 1 example per step (locate or examine rows in the data's shuffled "
             "order; its tokens listed); GRPO locate: 2 completions of up to 64 tokens per step, beta 0.04. "
             "median (min-max) over the steps; steps from the first, which loads the first batch\n"]
    rows = []
    for r in results:
        head = [r["family"], r["budget"], r["stage"]]
        if "error" in r:
            rows.append([*head, "-", r["error"], "", "", ""])
            continue
        tokens = " / ".join(f"{t:.0f}" for t in r["tokens_per_step"]) or "-"
        rows.append([*head, len(r["step_s"]), spread(r["step_s"], 1), spread(r["step_cpu_s"], 1), tokens,
                     f"{r['peak_rss_gib']:.1f}"])
    lines += markdown(["family", "budget (image tokens)", "stage", "steps", "wall s/step", "CPU s/step", "tokens/step",
                       "peak RSS GiB"], rows)
    return "\n".join(lines)


def run_child(stage: str, model: Path, data: Path, tokens: int, steps: int, out: Path, timeout: int,
              rerun: bool) -> dict:
    """One timed run in its own process: a crash or an out-of-memory kill costs that row, not the bench.
    A run whose result exists is read, not rerun, unless ``rerun``."""
    result = out / f"{model.name}-{stage}-{tokens}.json"
    if result.is_file() and not rerun:
        return json.loads(result.read_text())
    command = [sys.executable, "-m", "bench.real_path", "--child", stage, "--model", str(model), "--data", str(data),
               "--budget", str(tokens), "--steps", str(steps), "--out", str(out)]
    with (out / f"{result.stem}.log").open("w") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                  env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}).returncode
        except subprocess.TimeoutExpired:
            return {"stage": stage, "family": model.name, "budget": tokens, "error": f"over {timeout} s"}
    if code != 0 or not result.is_file():
        return {"stage": stage, "family": model.name, "budget": tokens, "error": f"exit {code} (see {result.stem}.log)"}
    return json.loads(result.read_text())


def zoom_rows(name: str, records: list, protocol) -> dict:
    """Zoom factor over every annotated box's crop window, overall and by the window's longest side."""
    from zoomin.zoom import crop_window, zoom_factor

    found = []
    for r in records:
        for box in r.boxes[: protocol.crop.max_crops]:
            window = crop_window(box, r.image_size, protocol.crop)
            found.append((max(window[2] - window[0], window[3] - window[1]), zoom_factor(window, r.image_size, protocol)))
    zooms = [z for _, z in found]
    buckets = {"window < 256 px": [z for s, z in found if s < 256],
               "256-640 px": [z for s, z in found if 256 <= s < 640],
               ">= 640 px": [z for s, z in found if s >= 640]}
    return {"policy": name, "boxes": len(zooms), "all": spread(zooms), "below_1": sum(z < 1 for z in zooms) / len(zooms),
            **{k: spread(v) if v else "-" for k, v in buckets.items()}}


def zoom_table(models: dict[str, Path], data: Path, out: Path, mini_n: int) -> tuple[str, list[dict]]:
    """The tiny recipe's policy on zoom-needed MagniFake-mini; the scale recipes' and the old fixed 112 px
    policy (released budget) on the photographs."""
    from transformers import AutoImageProcessor

    from rl.demo import FAMILY, GLOBAL_TOKENS, IMAGE_SIDE
    from zoomin.codecs import BoxCodec
    from zoomin.data import load_records
    from zoomin.protocol import CropPolicy, ProtocolConfig
    from zoomin.synth import synthesize_zoom_needed
    from zoomin.tiny import build_tiny_vlm

    demo_model = out / "demo_model"
    if not (demo_model / "config.json").is_file():
        build_tiny_vlm(FAMILY, "small", demo_model, max_image_tokens=GLOBAL_TOKENS)
    mini = out / "magnifake_mini"
    if not (mini / "train.jsonl").is_file():
        synthesize_zoom_needed(mini, n=mini_n, side=IMAGE_SIDE)
    tiny_crop = yaml.safe_load(Path(TINY_CROP_RECIPE).read_text())["protocol"]["crop"]
    demo_codec = BoxCodec.from_processor(FAMILY, AutoImageProcessor.from_pretrained(demo_model))
    mini_records = [r for r in load_records(mini / "train.jsonl")[0] if r.boxes]
    photos, _ = load_records(data)
    rows = [{"data": f"zoom-needed MagniFake-mini ({IMAGE_SIDE} px)", "model": f"demo {FAMILY} ({GLOBAL_TOKENS} tokens)",
             **zoom_rows(f"tiny recipe {json.dumps(tiny_crop)}", mini_records,
                         ProtocolConfig(codec=demo_codec, crop=CropPolicy(**tiny_crop)))}]
    for family, model in models.items():
        recipe = yaml.safe_load(Path(SCALE_RECIPES[family]).read_text())["protocol"]
        codec = codec_of(family, model, **recipe["codec"])
        rows.append({"data": "2-4 MP photographs", "model": f"{family}, {codec.max_image_tokens} tokens",
                     **zoom_rows(SCALE_RECIPES[family], photos, ProtocolConfig(codec=codec, crop=CropPolicy(**recipe["crop"])))})
    for family, model in models.items():
        codec = codec_of(family, model)
        rows.append({"data": "2-4 MP photographs", "model": f"{family}, {codec.max_image_tokens} tokens (released)",
                     **zoom_rows("old default: resize_longest 112", photos,
                                 ProtocolConfig(codec=codec, crop=CropPolicy(resize_longest=112)))})
    lines = ["zoom factor = detail of a box's region in its crop / in the global view, both after the processor's "
             "resize; median (min-max) over the annotated boxes, and by the crop window's longest side\n"]
    sizes = ["window < 256 px", "256-640 px", ">= 640 px"]
    lines += markdown(["data", "model, budget", "crop policy", "boxes", "zoom, all", "below 1x", *sizes],
                      [[r["data"], r["model"], r["policy"], r["boxes"], r["all"], f"{r['below_1']:.0%}",
                        *(r[k] for k in sizes)] for r in rows])
    return "\n".join(lines), rows


def zoom_by_size(models: dict[str, Path]) -> str:
    """The scale recipes' zoom by photograph size, for a 600 px window (a native crop: the zoom is the global
    view's shrink factor) and for a window of the whole image (scaled down to the budget, or to ``max_crop_pixels``)."""
    from zoomin.protocol import CropPolicy, ProtocolConfig
    from zoomin.zoom import zoom_factor

    rows = []
    for family, model in models.items():
        recipe = yaml.safe_load(Path(SCALE_RECIPES[family]).read_text())["protocol"]
        protocol = ProtocolConfig(codec=codec_of(family, model, **recipe["codec"]), crop=CropPolicy(**recipe["crop"]))
        for w, h in sorted(set(SIZES), key=lambda s: s[0] * s[1]):
            gw, gh = protocol.codec.resized((w, h))
            rows.append([SCALE_RECIPES[family], f"{w}x{h}", f"{w * h / 1e6:.2f}", f"{gw}x{gh}",
                         f"{zoom_factor([0, 0, 600, 600], (w, h), protocol):.2f}",
                         f"{zoom_factor([0, 0, w, h], (w, h), protocol):.2f}"])
    return "\n".join(markdown(["recipe", "photograph", "MP", "global view", "zoom, 600 px window",
                                "zoom, whole-image window"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/real_path")
    ap.add_argument("--budgets", type=int, nargs="+", default=[256, 1280, 16384], help="image tokens per image")
    ap.add_argument("--photos", type=int, default=24, help="2-4 MP photographs in the MagniFake folder")
    ap.add_argument("--mini", type=int, default=200, help="zoom-needed MagniFake-mini records")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--released-steps", type=int, default=1,
                    help="steps of each run at the largest budget (an SFT step took 55-126 s here, GRPO longer)")
    ap.add_argument("--rerun", action="store_true", help="rerun timed runs whose results exist")
    ap.add_argument("--stages", nargs="*", default=["sft", "grpo"], choices=["sft", "grpo"],
                    help="stages to time (none: tokens and zoom only)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one timed run may take")
    ap.add_argument("--child", choices=["sft", "grpo"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.out).resolve()
    if a.child:  # one timed run, started by run_child
        result = train(a.child, a.model, a.data, a.budget, a.steps, str(out / f"{Path(a.model).name}-{a.child}-{a.budget}"))
        (out / f"{Path(a.model).name}-{a.child}-{a.budget}.json").write_text(json.dumps(result, indent=1))
        return
    out.mkdir(parents=True, exist_ok=True)
    data = out / "photos" / "train.jsonl"
    if not data.is_file():
        photographs(data.parent, a.photos)
    models = released_models(out / "models")
    tables, numbers = [], {}
    text, numbers["tokens"] = token_table(models, data, a.budgets)
    tables.append(text)
    print(text + "\n", flush=True)
    text, numbers["zoom"] = zoom_table(models, data, out, a.mini)
    tables += [text, zoom_by_size(models)]
    print("\n\n".join(tables[-2:]) + "\n", flush=True)
    if a.stages:
        released = max(a.budgets)
        numbers["steps"] = [run_child(stage, model, data, tokens, a.released_steps if tokens == released else a.steps,
                                      out, a.timeout, a.rerun)
                            for model in models.values() for tokens in a.budgets for stage in a.stages]
        tables.append(step_table(numbers["steps"]))
        print(tables[-1], flush=True)
    (out / "real_path.md").write_text("\n\n".join(tables) + "\n")
    (out / "real_path.json").write_text(json.dumps(numbers, indent=1) + "\n")


if __name__ == "__main__":
    main()
