"""The zoomin command: data, training, export, detection and evaluation from one entry point.

It sits at the top of the house (it may import everything; nothing imports it). Subcommands import
their heavy dependencies only when they run, so ``zoomin data validate`` starts in a second; the
training subcommands (``warmup``, ``sft``, ``grpo``) parse their own arguments with TRL's parser.
Every user error (a wrong path, an unknown family, bad data, a bad recipe) ends in one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

TRAINING = ("warmup", "sft", "grpo")
"""Training subcommands: each runs its module's ``main(argv)`` (``--config recipe.yaml --key value``)."""


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TRAINING:
        return _train(argv[0], argv[1:])
    if argv and argv[0] == "check":
        return _check(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except (UsageError, FileNotFoundError, ValueError, OSError) as e:
        print(f"zoomin {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoomin", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    for name in TRAINING:
        sub.add_parser(name, add_help=False, help=f"train (rl/{name}.py); `zoomin {name} --help` lists every option")
    sub.add_parser("check", add_help=False,
                   help="a stage's pre-flight without loading weights: zoomin check --config RECIPE [--sample N] "
                        "[--key value ...]; exit 0 if it can start, 1 with every problem named, 2 on a recipe it cannot "
                        "read (rl/preflight.py)")

    data = sub.add_parser("data", help="MagniFake data: validate, synthesise, import, annotate, publish")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    v = data_sub.add_parser("validate", help="report every bad record; exit 0 if all are good, 1 if not")
    v.add_argument("path", help="a .jsonl file or a folder saved by datasets.save_to_disk")
    v.add_argument("--root", help="image root for relative paths (default: the file's folder)")
    v.add_argument("--strict", action="store_true", help="count warnings (e.g. fake without boxes) as failures")
    v.add_argument("--report", help="write the full report as JSON to this file")
    v.add_argument("--max-pixels", type=int, default=None, help="refuse images above this many pixels")
    v.set_defaults(run=_validate, command="data validate")
    s = data_sub.add_parser("synth", help="build the synthetic MagniFake-mini set offline")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, default=400, help="number of images (train + test)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument("--min-side", type=int, default=96, help="smallest image side in px")
    s.add_argument("--max-side", type=int, default=160, help="largest image side in px")
    s.add_argument("--kinds", nargs="+", default=None, help="artifact kinds to plant (default: all)")
    s.add_argument("--strength", type=float, default=1.0, help="artifact intensity; 1 is the default look")
    s.add_argument("--zoom-needed", action="store_true",
                   help="the demo's set instead: fine artifacts only a zoomed crop keeps, and coarse cues in real "
                        "and fake images alike (--side, --amplitude; the side and kind options above do not apply)")
    s.add_argument("--side", type=int, default=None,
                   help="zoom-needed: image side in px (default: zoomin.synth.synthesize_zoom_needed's, the demo's)")
    s.add_argument("--amplitude", type=float, default=None,
                   help="zoom-needed: the fine pattern's +/- intensity in fakes' cues (default: zoomin.synth.ZOOM_AMPLITUDE; "
                        "0: fakes look real)")
    s.set_defaults(run=_synth, command="data synth")
    _import_parser(data_sub)
    h = data_sub.add_parser("to-hf", help="a MagniFake folder as a `datasets` dataset with a dataset card")
    h.add_argument("folder", metavar="DIR", help="a folder of <split>.jsonl files (e.g. from `zoomin data import`)")
    h.add_argument("--out", required=True, metavar="HF_DIR", help="where to save it (DatasetDict.save_to_disk)")
    h.add_argument("--name", help="the card's pretty name (default: the folder's name)")
    h.add_argument("--license", help="the card's license (default: the imported source's, when there is one)")
    h.add_argument("--push-to-hub", metavar="REPO", help="also upload it as this Hugging Face Hub dataset repo")
    h.add_argument("--private", action="store_true", help="make the pushed repo private")
    h.add_argument("--max-pixels", type=int, default=None, help="refuse images above this many pixels")
    h.set_defaults(run=_to_hf, command="data to-hf")
    _annotate_parser(data_sub)

    t = sub.add_parser("tiny", help="build a random-weight VLM of a real architecture locally")
    t.add_argument("--family", required=True, help="qwen2_5_vl | qwen2_vl | qwen3_vl")
    t.add_argument("--size", default="tiny", help="tiny (unit tests) | small (the demo)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-image-tokens", type=int, default=None,
                   help="merged vision tokens per image, the processor's global view (default: the size's own; "
                        "the demo's is 16, so a 256 px image is halved and only a zoomed crop keeps fine detail)")
    t.set_defaults(run=_tiny, command="tiny")

    det = sub.add_parser("detect", help="run both queries on images: verdict, boxes, explanation")
    det.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    det.add_argument("--checkpoint", required=True, help="a ZoomIn checkpoint folder")
    det.add_argument("--json", action="store_true", help="print one JSON object per image and line")
    det.add_argument("--save-viz", metavar="DIR", help="write a PNG per image with boxes, crops and verdict")
    det.add_argument("--batch-size", type=_positive_int, default=8)
    det.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    det.set_defaults(run=_detect, command="detect")

    ev = sub.add_parser("eval", help="accuracy, F1, AUROC, IoU, BLEU-2, ROUGE-L of a checkpoint on MagniFake data")
    ev.add_argument("--checkpoint", required=True, help="a ZoomIn checkpoint folder")
    ev.add_argument("--data", required=True, help="a MagniFake .jsonl file or saved `datasets` folder")
    ev.add_argument("--root", help="image root for relative paths (default: the file's folder)")
    ev.add_argument("--out", default="eval.json", help="write the metrics and predictions here (JSON)")
    ev.add_argument("--limit", type=_positive_int, default=None, help="evaluate the first N good records only")
    ev.add_argument("--robustness", action="store_true", help="also evaluate after JPEG q50 and 0.5x down-scaling")
    ev.add_argument("--batch-size", type=_positive_int, default=8)
    ev.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ev.set_defaults(run=_eval, command="eval")

    x = sub.add_parser("export", help="training run -> two-stage ZoomIn checkpoint (merged safetensors + zoomin.json)")
    x.add_argument("--from", dest="source", required=True, help="a training output folder or one of its checkpoints")
    x.add_argument("--out", required=True, help="the checkpoint folder to write (atomically)")
    x.add_argument("--metrics", help="a `zoomin eval --out` JSON whose clean metrics go into the model card")
    x.add_argument("--eval-dataset", metavar="NAME", help="name of the data --metrics ran on (default: the first "
                   "--dataset, else MagniFake)")
    x.add_argument("--eval-split", default="test", help="split of the data --metrics ran on (default: test)")
    x.add_argument("--dataset", action="append", default=[], help="dataset name for the model card (repeatable)")
    x.add_argument("--examples", metavar="DATA", help="MagniFake evaluation data: a few of its images go into the "
                   "checkpoint (examples/) with the exported model's evidence pictures (evidence/, in the card)")
    x.add_argument("--n-examples", type=_positive_int, default=4, help="how many --examples images (default: 4)")
    x.add_argument("--space", action="store_true", help="also write a Hugging Face Space of the checkpoint (space/)")
    x.add_argument("--license", default="apache-2.0", help="license for the model card metadata")
    x.add_argument("--device", default="cpu", help="torch device for drawing the evidence pictures")
    x.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    x.add_argument("--push-to-hub", metavar="REPO", help="also upload the checkpoint to this Hub model repo (and "
                   "space/ to the Space of the same name)")
    x.set_defaults(run=_export, command="export")

    a = sub.add_parser("app", help="serve a checkpoint in a browser page (Gradio; pip install 'zoomin-rl[app]')")
    a.add_argument("--checkpoint", required=True, help="a ZoomIn checkpoint folder")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    a.add_argument("--port", type=_positive_int, default=7860)
    a.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    a.add_argument("--max-pixels", type=_positive_int, default=None, help="refuse uploads above this many pixels")
    a.set_defaults(run=_app, command="app")

    d = sub.add_parser("demo", help="run the pipeline on the embedded default (small VLM + MagniFake-mini)")
    d.add_argument("--out", default="runs/demo", help="everything is written under this folder")
    d.add_argument("--n", type=int, default=1200, help="MagniFake-mini size (train + test)")
    d.add_argument("--seed", type=int, default=0, help="seeds the data, the model's initialisation and every stage")
    d.add_argument("--grpo_steps", type=int, default=None,
                   help="GRPO steps per stage (default: the recipes'); few steps make a quick smoke run")
    d.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE", dest="settings",
                   help="change one stage's recipe (stages: warmup, sft, grpo_locate, grpo_examine), e.g. "
                        "--set sft.num_train_epochs=4 --set 'grpo_examine.reward_weights=2 1 0.25 0.25'")
    d.set_defaults(run=_demo, command="demo")
    return p


def _import_parser(data_sub) -> None:
    """``zoomin data import DATASET SRC --out DIR``: one sub-command per public dataset."""
    imp = data_sub.add_parser("import", help="convert a public grounded dataset into a MagniFake folder")
    which = imp.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    sources = {
        "synthscars": ("SynthScars (LEGION)", "the dataset root holding train/ and test/, or one split's folder",
                       "train"),
        "loki": ("LOKI, image part", "the LOKI repository root holding data_json/", "test"),
        "xaigd": ("X-AIGD", "the Hub snapshot (data/<split>-*.parquet) or a parquet file", "labeled_train"),
        "fakeclue": ("FakeClue (FakeVLM)", "the annotation JSON file (data_json/train.json or test.json)", "train"),
        "swift": ("ms-swift grounding JSONL (FakeXplained-style)", "the .jsonl file", "train"),
    }
    for name, (title, src_help, split) in sources.items():
        d = which.add_parser(name, help=f"import {title}")
        d.add_argument("src", metavar="SRC", help=src_help)
        d.add_argument("--out", required=True, metavar="DIR", help="the MagniFake folder to write into")
        split_help = "the source split to import; names DIR/<split>.jsonl" if name in ("synthscars", "xaigd") \
            else "names DIR/<split>.jsonl"
        d.add_argument("--split", default=split, help=f"{split_help} (default: {split})")
        d.add_argument("--link", action="store_true",
                       help="hard-link images instead of copying them (copies where linking is impossible)")
        d.add_argument("--max-pixels", type=int, default=None, help="skip images above this many pixels")
        if name == "loki":
            d.add_argument("--media-root", help="where media_data/ lies (default: SRC)")
            d.add_argument("--all-images", action="store_true",
                           help="also import true_or_false.json's images that have no regional annotation")
        if name in ("fakeclue", "swift"):
            d.add_argument("--images", help="the folder image paths are relative to (default: next to SRC)")
        if name == "swift":
            d.add_argument("--label", choices=("fake", "real"), default="fake",
                           help="label of rows without their own 'label' (default: fake)")
        d.set_defaults(run=_import, command=f"data import {name}")


def _training_main(name: str) -> Callable[[list[str]], object]:
    """The ``main`` of a training subcommand, imported only when it runs (each pulls in TRL)."""
    if name == "warmup":
        from rl.warmup import main
    elif name == "sft":
        from rl.sft import main
    else:
        from rl.grpo import main
    return main


def _train(name: str, argv: list[str]) -> int:
    from rl.config import RecipeError

    try:
        _training_main(name)(argv)
    except (RecipeError, FileNotFoundError, ValueError) as e:
        print(f"zoomin {name}: error: {e}", file=sys.stderr)
        return 2
    return 0


def _check(argv: list[str]) -> int:
    from rl.config import RecipeError, ZoomInGRPOConfig, ZoomInSFTConfig
    from rl.preflight import main
    from rl.warmup import ZoomInWarmupConfig

    try:
        return main(argv, {"warmup": ZoomInWarmupConfig, "sft": ZoomInSFTConfig, "grpo": ZoomInGRPOConfig})
    except (RecipeError, FileNotFoundError, ValueError) as e:
        print(f"zoomin check: error: {e}", file=sys.stderr)
        return 2


def _validate(args: argparse.Namespace) -> int:
    from zoomin.data import load_records
    from zoomin.images import DEFAULT_MAX_PIXELS

    _need(args.path)
    _, report = load_records(args.path, args.root, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
                             report_path=args.report)
    for finding in report.findings:
        print(finding)
    print(report.summary())
    failed = report.n_good < report.n_records or (args.strict and report.warnings)
    return 1 if failed else 0


def _synth(args: argparse.Namespace) -> int:
    from zoomin.synth import ARTIFACT_KINDS, synthesize, synthesize_zoom_needed

    if args.zoom_needed:
        given = {k: v for k in ("side", "amplitude") if (v := getattr(args, k)) is not None}  # else the set's own
        summary = synthesize_zoom_needed(args.out, n=args.n, seed=args.seed, test_fraction=args.test_fraction, **given)
        print(f"wrote zoom-needed MagniFake-mini to {args.out}: {summary}")
        return 0
    summary = synthesize(args.out, n=args.n, seed=args.seed, test_fraction=args.test_fraction,
                         min_side=args.min_side, max_side=args.max_side, kinds=args.kinds or ARTIFACT_KINDS,
                         strength=args.strength)
    print(f"wrote MagniFake-mini to {args.out}: {summary}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from zoomin.images import DEFAULT_MAX_PIXELS
    from zoomin.importers import IMPORTERS

    _need(args.src)
    options = {key: getattr(args, key) for key in ("media_root", "all_images", "images", "label")
               if getattr(args, key, None) is not None}
    report = IMPORTERS[args.dataset](args.src, args.out, split=args.split, link=args.link,
                                     max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, **options)
    print(report.summary())
    print(f"wrote {report.records} and {Path(report.records).with_suffix('.import_report.json')}")
    if not report.n_records:
        raise UsageError(f"nothing imported from {args.src}; the import report lists why")
    return 0


def _to_hf(args: argparse.Namespace) -> int:
    from zoomin.hf_dataset import folder_to_hf, push_to_hub
    from zoomin.images import DEFAULT_MAX_PIXELS

    _need(args.folder)
    reports = folder_to_hf(args.folder, args.out, max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
                           pretty_name=args.name, license=args.license)
    for report in reports.values():
        for finding in report.errors:
            print(f"left out: {finding}", file=sys.stderr)
        print(report.summary())
    print(f"wrote {args.out} (splits {', '.join(reports)}) with its dataset card README.md")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(args.out, args.push_to_hub, private=args.private)}")
    return 1 if any(r.errors for r in reports.values()) else 0


def _annotate_parser(data_sub) -> None:
    a = data_sub.add_parser(
        "annotate", help="explain and ground labelled images with VLM endpoints into MagniFake records",
        description="The paper's annotation pipeline against OpenAI-compatible chat-completions endpoints: "
        "explain each image twice from its known label, ground every cue twice, keep consistent annotations. "
        "Rerun the same command to continue an interrupted run. Exit 0 when done, 1 when some records "
        "failed on endpoint errors (retry them with --retry-failed), 2 on a usage error.")
    a.add_argument("src", help="a .jsonl or .json of records with id, image, label; or a folder with real/ and fake/")
    a.add_argument("--out", required=True, help="output folder: data.jsonl, rejected.jsonl, run.json, images/")
    for flag, var, what in (
        ("--explainer-url", "ZOOMIN_EXPLAINER_URL", "base URL of the explainer's API, e.g. http://127.0.0.1:8000/v1"),
        ("--explainer-model", "ZOOMIN_EXPLAINER_MODEL", "the explainer's model name"),
        ("--second-explainer-url", "ZOOMIN_SECOND_EXPLAINER_URL", "a second explainer's URL (default: the explainer's)"),
        ("--second-explainer-model", "ZOOMIN_SECOND_EXPLAINER_MODEL",
         "a second explainer model (default: the explainer is sampled twice)"),
        ("--grounder-url", "ZOOMIN_GROUNDER_URL", "the grounder's URL (default: the explainer's)"),
        ("--grounder-model", "ZOOMIN_GROUNDER_MODEL", "the grounder's model name (default: the explainer's)"),
    ):
        a.add_argument(flag, default=os.environ.get(var) or None, help=f"{what}; default from ${var}")
    a.add_argument("--grounder-family", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen2_vl", "qwen3_vl"],
                   help="box convention of the grounder: qwen2_5_vl pixels of the image as sent, others a 0-1000 grid")
    a.add_argument("--grounder-min-pixels", type=_positive_int, default=None,
                   help="the grounder processor's min_pixels (default: the family's released processor)")
    a.add_argument("--grounder-max-pixels", type=_positive_int, default=None,
                   help="the grounder processor's max_pixels; must match the server's (default: the released one)")
    a.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (a local server needs none)")
    a.add_argument("--grounder-api-key-env", default=None,
                   help="environment variable of the grounder's key, when it is another provider's")
    a.add_argument("--timeout", type=_positive_float, default=120.0, help="seconds per request")
    a.add_argument("--max-retries", type=_non_negative_int, default=4,
                   help="retries per request on 408/409/429/5xx, timeouts and connection errors")
    a.add_argument("--concurrency", type=_positive_int, default=8, help="records in flight at once")
    a.add_argument("--record-timeout", type=_positive_float, default=1800.0,
                   help="seconds one record may take in all, retries included")
    a.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of every request")
    a.add_argument("--max-tokens", type=_positive_int, default=1024, help="answer budget per request")
    a.add_argument("--max-cues", type=_positive_int, default=6, help="cues asked for per explanation, at most")
    a.add_argument("--min-iou", type=float, default=0.5,
                   help="IoU above which boxes of the two grounding runs count as the same region")
    a.add_argument("--max-box-fraction", type=float, default=0.5,
                   help="boxes covering more than this share of the image are dropped")
    a.add_argument("--no-structured-output", action="store_true",
                   help="never send response_format (by default it is tried and dropped per role once refused)")
    a.add_argument("--source", default=None, help="the 'source' field of records that carry none")
    a.add_argument("--limit", type=_positive_int, default=None, help="annotate at most N pending records")
    a.add_argument("--retry-failed", action="store_true",
                   help="annotate again the records that failed on endpoint errors in earlier runs")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(run=_annotate, command="data annotate")


def _annotate(args: argparse.Namespace) -> int:
    from zoomin.annotate import Endpoint, Settings, annotate, grounder_codec
    from zoomin.annotate.client import EndpointError

    if not args.explainer_url or not args.explainer_model:
        missing = "--explainer-url (or $ZOOMIN_EXPLAINER_URL)" if not args.explainer_url else (
            "--explainer-model (or $ZOOMIN_EXPLAINER_MODEL)")
        raise UsageError(f"{missing} is required")
    explainer = Endpoint("explainer", args.explainer_url, args.explainer_model, args.api_key_env)
    second = None
    if args.second_explainer_url or args.second_explainer_model:
        second = Endpoint("second explainer", args.second_explainer_url or args.explainer_url,
                          args.second_explainer_model or args.explainer_model, args.api_key_env)
    grounder = Endpoint("grounder", args.grounder_url or args.explainer_url, args.grounder_model or args.explainer_model,
                        args.grounder_api_key_env or args.api_key_env)
    settings = Settings(
        explainer=explainer, second_explainer=second, grounder=grounder,
        codec=grounder_codec(args.grounder_family, args.grounder_min_pixels, args.grounder_max_pixels),
        timeout=args.timeout, max_retries=args.max_retries, concurrency=args.concurrency,
        record_timeout=args.record_timeout, temperature=args.temperature, max_tokens=args.max_tokens,
        max_cues=args.max_cues, min_iou=args.min_iou, max_box_fraction=args.max_box_fraction,
        structured=not args.no_structured_output)
    try:
        summary = annotate(args.src, args.out, settings, source_name=args.source, limit=args.limit,
                           retry_failed=args.retry_failed, progress=not args.no_progress)
    except EndpointError as e:
        raise UsageError(str(e)) from None
    print(summary.line(Path(args.out)))
    for role, used in summary.tokens.items():
        print(f"  {role}: {used['requests']} answers, {used['prompt_tokens']} prompt + "
              f"{used['completion_tokens']} completion tokens; structured output {summary.structured[role]}")
    if summary.stages:
        print("  rejections by stage: " + ", ".join(f"{k} {v}" for k, v in summary.stages.most_common()))
    return 1 if summary.counts["failed"] else 0


def _tiny(args: argparse.Namespace) -> int:
    from zoomin.tiny import build_tiny_vlm

    out = build_tiny_vlm(args.family, args.size, args.out, seed=args.seed, max_image_tokens=args.max_image_tokens)
    print(f"wrote {args.size} {args.family} model to {out}")
    return 0


def _detect(args: argparse.Namespace) -> int:
    from zoomin.detector import ZoomInDetector
    from zoomin.images import ImageProblem, load_rgb

    _need(args.checkpoint)
    detector = ZoomInDetector.from_pretrained(args.checkpoint, device=args.device)
    failed = 0
    viz_names: set[str] = set()
    for start in range(0, len(args.images), args.batch_size):
        paths, images = [], []
        for path in args.images[start : start + args.batch_size]:
            try:
                images.append(load_rgb(path, detector.max_pixels))
                paths.append(path)
            except ImageProblem as e:
                print(f"zoomin detect: {path}: error: {e}", file=sys.stderr)
                failed += 1
        for path, image, det in zip(paths, images, detector.detect(images, batch_size=args.batch_size)):
            print(json.dumps({"image": path, **det.to_dict()}) if args.json else _summary(path, det), flush=True)
            if args.save_viz:
                from zoomin.viz import save

                save(image, det, Path(args.save_viz) / _viz_name(path, viz_names))
    return 1 if failed else 0


def _summary(path: str, det) -> str:
    """A few readable lines for one detection."""
    verdict = det.verdict or "no verdict"
    lines = [f"{path}: {verdict} (P(fake) {det.score:.3f}; query 1 said {det.preliminary_verdict or 'nothing'})"]
    boxes = " ".join("[" + ",".join(f"{v:.0f}" for v in b) + "]" for b in det.boxes)
    lines.append(f"  boxes: {boxes or 'none'}")
    lines.append(f"  explanation: {det.explanation if det.explanation is not None else '(none)'}")
    if det.problems:
        lines.append(f"  format problems: {'; '.join(det.problems)}")
    return "\n".join(lines)


def _viz_name(path: str, used: set[str]) -> str:
    """``STEM.png``, numbered when two images share a stem."""
    stem, name, i = Path(path).stem, f"{Path(path).stem}.png", 1
    while name in used:
        i += 1
        name = f"{stem}-{i}.png"
    used.add(name)
    return name


def _eval(args: argparse.Namespace) -> int:
    from zoomin.data import load_records
    from zoomin.detector import ZoomInDetector
    from zoomin.evaluate import evaluate, format_table

    _need(args.checkpoint)
    _need(args.data)
    records, report = load_records(args.data, args.root)
    for finding in report.errors:
        print(f"skipped: {finding}", file=sys.stderr)
    records = records[: args.limit] if args.limit is not None else records
    if not records:
        raise UsageError(f"no usable records in {args.data} ({report.summary()})")
    detector = ZoomInDetector.from_pretrained(args.checkpoint, device=args.device)
    result = evaluate(detector, records, batch_size=args.batch_size, robustness=args.robustness)
    for skipped in result["skipped"]:
        print(f"skipped in {skipped['condition']}: {skipped['id']}: {skipped['reason']}", file=sys.stderr)
    result = {"checkpoint": str(args.checkpoint), "data": report.summary(), **result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result["metrics"]))
    clean = result["metrics"]["clean"]
    for query in ("locate", "examine"):
        if clean[f"{query}_cut_rate"] > 0:
            budget = detector.info.generation[query]["max_new_tokens"]
            print(f"zoomin eval: warning: {clean[f'{query}_cut_rate']:.1%} of the {query} answers hit the checkpoint's "
                  f"budget of {budget} new tokens unfinished (zoomin.json 'generation'); their verdicts or boxes are "
                  "lost to the cut, so the metrics above count them as failures", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rl import export as rl_export
    from rl.card import Evaluation

    evaluation = examples = None
    if args.metrics:
        _need(args.metrics)
        name = args.eval_dataset or (args.dataset[0] if args.dataset else "MagniFake")
        evaluation = Evaluation.from_eval_json(args.metrics, name, args.eval_split)
    if args.examples:
        from zoomin.data import load_records

        _need(args.examples)
        records, report = load_records(args.examples)
        if not records:
            raise UsageError(f"no usable records in {args.examples} ({report.summary()})")
        examples = rl_export.pick_examples(records, args.n_examples)
    if args.space:
        _need_gradio("export --space")
    folder = rl_export.export(args.source, args.out, evaluation=evaluation, datasets=args.dataset,
                              license=args.license, examples=examples or (), space=args.space,
                              model_id=args.push_to_hub, device=args.device, overwrite=args.overwrite)
    print(f"wrote ZoomIn checkpoint {folder}")
    if args.push_to_hub:
        for kind, url in rl_export.push_to_hub(folder, args.push_to_hub).items():
            print(f"pushed the {kind}: {url}")
    return 0


def _app(args: argparse.Namespace) -> int:
    _need(args.checkpoint)
    _need_gradio("app")
    from zoomin.app import ZoomInApp

    app = ZoomInApp.from_checkpoint(args.checkpoint, device=args.device)
    if args.max_pixels:
        app.detector.max_pixels = args.max_pixels
    app.launch(host=args.host, port=args.port)
    return 0


def _need_gradio(command: str) -> None:
    from importlib.util import find_spec

    if find_spec("gradio") is None:
        raise UsageError(f"zoomin {command} needs Gradio: pip install 'zoomin-rl[app]'")


def _demo(args: argparse.Namespace) -> int:
    from rl.config import RecipeError
    from rl.demo import run_demo

    try:
        return run_demo(Path(args.out), n=args.n, seed=args.seed, grpo_steps=args.grpo_steps, settings=args.settings)
    except RecipeError as e:
        print(f"zoomin demo: error: {e}", file=sys.stderr)
        return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _need(path: str) -> None:
    if not Path(path).exists():
        raise UsageError(f"no such file or folder: {path}")


if __name__ == "__main__":
    sys.exit(main())
