"""The annotation run: explain twice, ground twice, filter, write; concurrent, bounded, resumable.

Per record: decode and resize the image once (in a thread, off the event loop), ask for two
explanations at once, check they imply the known label, ask for two groundings of the first
explanation's cues at once, keep the boxes both runs agree on, and write the record, or its
rejection with the stage and reason. ``concurrency`` records are in flight at a time (that many
workers pull from one queue of pending records), each under a total deadline (``record_timeout``)
on top of the client's per-request timeout and retries, so one stuck record cannot hold a worker
forever. Any failure of one record, including a bug, rejects that record and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoomin.annotate.client import Endpoint, RequestFailed, RoleClient
from zoomin.annotate.filters import Rejected, VerdictReader, agreed_boxes, check_verdicts, place
from zoomin.annotate.output import FAILED_STAGES, Output
from zoomin.annotate.prompts import (
    coords_sentence,
    explain_messages,
    explanation_format,
    ground_messages,
    grounding_format,
    parse_explanation,
    parse_grounding,
)
from zoomin.annotate.sources import PROCESSOR_DEFAULTS, Item, kept_size, prepare_image, read_source
from zoomin.codecs import BoxCodec
from zoomin.images import DEFAULT_MAX_PIXELS, ImageProblem


def grounder_codec(family: str, min_pixels: int | None = None, max_pixels: int | None = None) -> BoxCodec:
    """The grounder family's codec with its released processor's resize settings (overridable to
    match a server started with other ``min_pixels``/``max_pixels``)."""
    if family not in PROCESSOR_DEFAULTS:
        raise ValueError(f"unknown grounder family {family!r}; known: {', '.join(PROCESSOR_DEFAULTS)}")
    settings = dict(PROCESSOR_DEFAULTS[family])
    if min_pixels is not None:
        settings["min_pixels"] = min_pixels
    if max_pixels is not None:
        settings["max_pixels"] = max_pixels
    if not 0 < settings["min_pixels"] <= settings["max_pixels"]:
        raise ValueError(f"grounder pixel bounds must satisfy 0 < min <= max, got {settings}")
    return BoxCodec(family, **settings)


@dataclass
class Settings:
    explainer: Endpoint
    grounder: Endpoint
    second_explainer: Endpoint | None = None
    """None: the explainer is sampled twice."""
    codec: BoxCodec = field(default_factory=lambda: grounder_codec("qwen2_5_vl"))
    timeout: float = 120.0
    """Seconds per request (the client's timeout)."""
    max_retries: int = 4
    concurrency: int = 8
    record_timeout: float = 1800.0
    """Seconds one record may take in all, retries included (two rounds of requests, each with up to
    ``max_retries`` retries of ``timeout`` seconds and the client's backoff)."""
    temperature: float = 0.7
    """Sampling temperature of every request: the two explanations and the two groundings must be
    independent samples for their agreement to mean anything."""
    max_tokens: int = 1024
    max_cues: int = 6
    min_iou: float = 0.5
    max_box_fraction: float = 0.5
    structured: bool = True
    """Try structured output first (each role falls back on its own when refused)."""
    image_max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        checks = {"timeout": self.timeout > 0, "max_retries": self.max_retries >= 0, "concurrency": self.concurrency >= 1,
                  "record_timeout": self.record_timeout > 0, "temperature": self.temperature >= 0,
                  "max_tokens": self.max_tokens >= 1, "max_cues": self.max_cues >= 1,
                  "min_iou": 0 <= self.min_iou < 1, "max_box_fraction": 0 < self.max_box_fraction <= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"setting {bad[0]} = {getattr(self, bad[0])!r} is out of range")

    def annotation_settings(self) -> dict:
        """What shapes an annotation (models, prompts' limits, filters, frames): a rerun with other
        values mixes two kinds of record in one folder, which the run points out."""
        roles = {"explainer": self.explainer, "second_explainer": self.second_explainer or self.explainer,
                 "grounder": self.grounder}
        return {**{k: v.model for k, v in roles.items()}, "codec": self.codec.to_dict(),
                "temperature": self.temperature, "max_tokens": self.max_tokens, "max_cues": self.max_cues,
                "min_iou": self.min_iou, "max_box_fraction": self.max_box_fraction}


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)
    """``done`` (written to data.jsonl), ``rejected`` (by a filter or as unusable input),
    ``failed`` (endpoint errors, deadline, internal errors), ``skipped`` (done by an earlier run)."""
    stages: Counter = field(default_factory=Counter)
    """Rejections per stage."""
    tokens: dict[str, dict] = field(default_factory=dict)
    structured: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self, out_dir: Path) -> str:
        c = self.counts
        rate = (c["done"] + c["rejected"] + c["failed"]) / self.seconds if self.seconds else 0.0
        return (f"annotated {c['done'] + c['rejected'] + c['failed']} records in {self.seconds:.1f} s "
                f"({rate:.2f}/s): {c['done']} written to {out_dir / 'data.jsonl'}, {c['rejected']} rejected, "
                f"{c['failed']} failed (both in {out_dir / 'rejected.jsonl'}); {c['skipped']} done before")


def annotate(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: Settings,
    *,
    source_name: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> Summary:
    """Annotate every record of ``src`` not yet in ``out_dir`` (see the module docs of
    :mod:`zoomin.annotate.output` for what is written); return the tallies of this run.

    Raises SourceError, OutputError or EndpointError before any record is sent when the source,
    the folder or an endpoint cannot be used as they are.
    """
    items = read_source(src, source_name)
    output = Output(out_dir)
    done = output.open(retry_failed)
    try:
        previous = output.previous_run()
        if previous and previous.get("settings") not in (None, settings.annotation_settings()):
            _note(f"note: {output.dir} was written with other settings ({_diff(previous['settings'], settings)}); "
                  "records done before keep theirs")
        todo = [item for item in items if item.id not in done]
        todo = todo[:limit] if limit is not None else todo
        summary = Summary()
        summary.counts["skipped"] = sum(item.id in done for item in items)
        if todo:  # import the processor's resize now, not while the first requests' timeouts run
            kept_size((64, 64), settings.codec)
        start = time.perf_counter()
        asyncio.run(_run(todo, output, settings, summary, progress))
        summary.seconds = time.perf_counter() - start
        output.write_run({"settings": settings.annotation_settings(),
                          "endpoints": _endpoints(settings), "last_run": _run_record(summary)})
        return summary
    finally:
        output.close()


def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _diff(before: dict, settings: Settings) -> str:
    now = settings.annotation_settings()
    return ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k])


def _endpoints(settings: Settings) -> dict:
    roles = {"explainer": settings.explainer, "second explainer": settings.second_explainer,
             "grounder": settings.grounder}
    return {role: e.describe() for role, e in roles.items() if e is not None}


def _run_record(summary: Summary) -> dict:
    return {"counts": dict(summary.counts), "rejections_by_stage": dict(summary.stages), "tokens": summary.tokens,
            "structured_output": summary.structured, "seconds": round(summary.seconds, 3)}


@dataclass
class _Context:
    settings: Settings
    explainers: tuple[RoleClient, RoleClient]
    grounder: RoleClient
    reader: VerdictReader
    output: Output


async def _run(todo: list[Item], output: Output, settings: Settings, summary: Summary, progress: bool) -> None:
    from tqdm import tqdm

    def client(endpoint: Endpoint) -> RoleClient:
        return RoleClient(endpoint, settings.timeout, settings.max_retries, settings.structured, notify=_note)

    first = client(settings.explainer)
    second = client(settings.second_explainer) if settings.second_explainer else first
    grounder = client(settings.grounder)
    clients = list(dict.fromkeys([first, second, grounder]))
    ctx = _Context(settings, (first, second), grounder, VerdictReader(), output)
    bar = tqdm(total=len(todo), unit="img", desc="annotate", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        if todo:
            checked = set()
            for c in clients:
                key = (c.endpoint.url, c.endpoint.model, c.endpoint.api_key_env)
                if key not in checked:
                    checked.add(key)
                    await c.check()
        pending = iter(todo)

        async def worker() -> None:
            for item in pending:
                kind, row = await _one(item, ctx)
                if kind == "done":
                    output.write_record(row)
                else:
                    output.write_rejection(row)
                    summary.stages[row["stage"]] += 1
                summary.counts[kind] += 1
                bar.set_postfix({k: summary.counts[k] for k in ("done", "rejected", "failed")}, refresh=False)
                bar.update(1)

        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, max(len(todo), 1)))))
    finally:
        bar.close()
        for c in clients:
            summary.tokens[c.endpoint.role] = asdict(c.usage)
            summary.structured[c.endpoint.role] = (
                "used" if c.structured and settings.structured else
                f"refused: {c.structured_refusal}" if c.structured_refusal else "not tried")
            await c.close()


async def _one(item: Item, ctx: _Context) -> tuple[str, dict]:
    """("done", MagniFake record) or ("rejected" | "failed", rejection row)."""
    error = None
    try:
        row = await asyncio.wait_for(_annotate(item, ctx), ctx.settings.record_timeout)
        return "done", row
    except Rejected as r:
        stage, reason = r.stage, r.reason
    except RequestFailed as f:
        stage, reason, error = "request", f"{f.role} request failed", f.error
    except asyncio.TimeoutError:
        stage, reason = "timeout", f"not finished within {ctx.settings.record_timeout:g} s (record timeout)"
        error = "record timeout"
    except Exception as e:  # a bug must not end a long run: the record is rejected, retryable, and named
        stage, reason, error = "internal", "internal error while annotating", f"{type(e).__name__}: {e}"
    kind = "failed" if stage in FAILED_STAGES else "rejected"
    return kind, {"id": item.id, "stage": stage, "reason": reason, "error": error}


async def _annotate(item: Item, ctx: _Context) -> dict:
    s = ctx.settings
    if item.problem:
        raise Rejected("input", item.problem)
    try:
        sent = await asyncio.to_thread(prepare_image, item.image, s.codec, s.image_max_pixels)
    except ImageProblem as e:
        raise Rejected("image", str(e)) from None

    messages = explain_messages(sent.data_url, item.label, s.max_cues)
    answers = await _both([c.ask(messages, explanation_format(s.max_cues), s.temperature, s.max_tokens)
                           for c in ctx.explainers])
    explanations = []
    for i, answer in enumerate(answers, start=1):
        explanation, problem = parse_explanation(answer.text, s.max_cues)
        if problem:
            raise Rejected("explain", f"explanation {i}: {problem}{_cut(answer)}")
        explanations.append(explanation)
    check_verdicts(item.label, [e.text for e in explanations], ctx.reader)

    cues = explanations[0].cues
    grid = s.codec.family != "qwen2_5_vl"
    messages = ground_messages(sent.data_url, cues, coords_sentence(grid, sent.sent_size))
    answers = await _both([ctx.grounder.ask(messages, grounding_format(), s.temperature, s.max_tokens)
                           for _ in range(2)])
    runs = []
    for k, answer in enumerate(answers, start=1):
        entries, unusable, problem = parse_grounding(answer.text)
        if problem:
            raise Rejected("ground", f"grounding run {k}: {problem}{_cut(answer)}")
        runs.append(place(entries, cues, sent.original_size, s.codec, s.max_box_fraction, unusable))
    boxes, notes = agreed_boxes(runs, cues, s.min_iou)

    image = await asyncio.to_thread(ctx.output.place_image, item.image, item.id)
    return {"id": item.id, "image": image, "label": item.label, "boxes": boxes, "region_notes": notes,
            "explanation": explanations[0].text, "source": item.source, "generator": item.generator}


async def _both(requests: list) -> list[Any]:
    """Run both requests at once; the first failure is raised after both have ended (so no request
    is left running unobserved)."""
    results = await asyncio.gather(*requests, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _cut(answer) -> str:
    return " (the answer was cut at max_tokens)" if answer.truncated else ""

