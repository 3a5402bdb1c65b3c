"""The ``zoomin`` command.

Subcommands import their heavy dependencies only when they run, so ``zoomin data validate`` starts
in a second and the detector never drags a trainer in. Every user error (a wrong path, an unknown
family, bad data) ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


def main(argv: list[str] | None = None) -> int:
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

    data = sub.add_parser("data", help="MagniFake data: validate or synthesise")
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
    s.set_defaults(run=_synth, command="data synth")

    t = sub.add_parser("tiny", help="build a random-weight VLM of a real architecture locally")
    t.add_argument("--family", required=True, help="qwen2_5_vl | qwen2_vl | qwen3_vl")
    t.add_argument("--size", default="tiny", help="tiny (unit tests) | small (the demo)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(run=_tiny, command="tiny")

    d = sub.add_parser("demo", help="run the pipeline on the embedded default (small VLM + MagniFake-mini)")
    d.add_argument("--out", default="runs/demo", help="everything is written under this folder")
    d.add_argument("--n", type=int, default=400, help="MagniFake-mini size")
    d.set_defaults(run=_demo, command="demo")
    return p


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
    from zoomin.synth import synthesize

    summary = synthesize(args.out, n=args.n, seed=args.seed, test_fraction=args.test_fraction)
    print(f"wrote MagniFake-mini to {args.out}: {summary}")
    return 0


def _tiny(args: argparse.Namespace) -> int:
    from zoomin.tiny import build_tiny_vlm

    out = build_tiny_vlm(args.family, args.size, args.out, seed=args.seed)
    print(f"wrote {args.size} {args.family} model to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from zoomin.demo import run_demo

    return run_demo(Path(args.out), n=args.n)


def _need(path: str) -> None:
    if not Path(path).exists():
        raise UsageError(f"no such file or folder: {path}")


if __name__ == "__main__":
    sys.exit(main())
