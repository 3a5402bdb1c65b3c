"""What the annotation pipeline asks its two models, and how it reads their answers.

The *explainer* sees the image and its known label and answers
``{"explanation": "...", "cues": ["...", ...]}``; the *grounder* sees the image and the cues and answers
in Qwen2.5-VL's native grounding format, a JSON list of ``{"bbox_2d": [x1, y1, x2, y2], "label": cue}``.
Where an endpoint offers structured output, the JSON schemas here constrain the answer; where it
does not, the same answers are read out of free text (a code fence, chatter before or after the
JSON), because that is how chat models answer when nothing constrains them. Reading never raises:
an answer that cannot be used becomes a reason, which ends up in ``rejected.jsonl``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoomin.codecs import GRID

SYSTEM_PROMPT = "You are an image forensics expert who explains visual evidence precisely and concisely."

_LABEL_PHRASE = {"real": "a real photograph", "fake": "AI-generated"}

EXPLAIN_PROMPT = (
    "This image is known to be {phrase}. Write a forensic explanation of the visual evidence that shows "
    "it is {label}, as an examiner would point it out. Give each piece of evidence as a short cue that "
    "names one visible region of the image (an object or a part of it, e.g. \"the left hand's fingers\"), "
    "so that it can be located with a box. Give 1 to {max_cues} cues. End the explanation with one "
    "sentence that states the conclusion (\"The image is {label}.\"). Answer with JSON only: "
    '{{"explanation": "...", "cues": ["...", "..."]}}'
)

GROUND_PROMPT = (
    "Locate each of these regions of the image and output their bbox coordinates in JSON format:\n"
    "{cue_lines}\n"
    "Answer with a JSON list of {{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"<the region's text, "
    "copied exactly>\"}}, one entry per box (a region seen in several places gets several entries). "
    "{coords}"
)


def coords_sentence(grid: bool, sent_size: tuple[int, int]) -> str:
    """How the grounder's numbers are meant, in the frame of the image exactly as it was sent."""
    if grid:
        return (f"Coordinates are on a 0-{GRID} grid over the image: (0, 0) is the top-left corner and "
                f"({GRID}, {GRID}) the bottom-right one.")
    w, h = sent_size
    return f"Coordinates are absolute pixels of this {w}x{h} image."


def user_turn(data_url: str, text: str) -> list[dict]:
    """System prompt plus one user turn: the image (a base64 data URL) first, then the text."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                     {"type": "text", "text": text}]},
    ]


def explain_messages(data_url: str, label: str, max_cues: int) -> list[dict]:
    text = EXPLAIN_PROMPT.format(phrase=_LABEL_PHRASE[label], label=label, max_cues=max_cues)
    return user_turn(data_url, text)


def ground_messages(data_url: str, cues: list[str], coords: str) -> list[dict]:
    cue_lines = "\n".join(f"{i}. {cue}" for i, cue in enumerate(cues, start=1))
    return user_turn(data_url, GROUND_PROMPT.format(cue_lines=cue_lines, coords=coords))


def explanation_format(max_cues: int) -> dict:
    """``response_format`` for the explainer (OpenAI's ``json_schema`` form, which vLLM also takes)."""
    schema = {
        "type": "object",
        "properties": {
            "explanation": {"type": "string"},
            "cues": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max_cues},
        },
        "required": ["explanation", "cues"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "forensic_explanation", "schema": schema, "strict": True}}


def grounding_format() -> dict:
    """``response_format`` for the grounder: the native list itself, so a Qwen grounder is constrained
    to exactly what it was trained to write (an endpoint that wants an object at the root refuses
    it, and the run falls back to reading plain answers)."""
    item = {
        "type": "object",
        "properties": {
            "bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            "label": {"type": "string"},
        },
        "required": ["bbox_2d", "label"],
        "additionalProperties": False,
    }
    schema = {"type": "array", "items": item, "minItems": 1}
    return {"type": "json_schema", "json_schema": {"name": "grounding", "schema": schema, "strict": True}}


# ---- reading answers ---------------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)


def find_json(text: str, accept: Callable[[Any], bool]) -> Any | None:
    """The first JSON value in ``text`` that ``accept`` takes: the whole text, a fenced block, or a
    value embedded in prose (scanned from each ``{`` or ``[``); None when there is none."""
    for candidate in (text, *_FENCE.findall(text)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if accept(value):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if accept(value):
            return value
    return None


@dataclass(frozen=True)
class Explanation:
    text: str
    cues: list[str]


def parse_explanation(text: str, max_cues: int) -> tuple[Explanation | None, str | None]:
    """The explanation and its cues (stripped, duplicates dropped), or None and why not."""
    value = find_json(text, lambda v: isinstance(v, dict) and "explanation" in v)
    if value is None:
        return None, f'no JSON object with "explanation" and "cues" in the answer: {_excerpt(text)}'
    explanation, cues = value.get("explanation"), value.get("cues")
    if not isinstance(explanation, str) or not explanation.strip():
        return None, '"explanation" is not a non-empty string'
    if not isinstance(cues, list) or not all(isinstance(c, str) for c in cues):
        return None, '"cues" is not a list of strings'
    kept = list(dict.fromkeys(c.strip() for c in cues if c.strip()))
    if not kept:
        return None, "the explanation names no cue"
    if len(kept) > max_cues:
        return None, f"the explanation names {len(kept)} cues, more than the {max_cues} asked for"
    return Explanation(explanation.strip(), kept), None


@dataclass(frozen=True)
class GroundedBox:
    """One entry of a grounding answer: a box in the grounder's coordinates and the label it gave."""

    coords: tuple[float, float, float, float]
    label: str


def parse_grounding(text: str) -> tuple[list[GroundedBox] | None, int, str | None]:
    """The usable entries of a grounding answer, how many entries were unusable, and a problem when
    the answer holds no grounding list at all.

    Accepted shapes: the native list, a single entry, or an object holding the list under any key
    (what some endpoints write when told to answer with an object). Boxes given corner-first in the
    wrong order are put in order: the region is the same.
    """
    value = find_json(text, _looks_like_grounding)
    if value is None:
        return None, 0, f'no JSON list of {{"bbox_2d", "label"}} entries in the answer: {_excerpt(text)}'
    if isinstance(value, dict):
        value = [value] if "bbox_2d" in value else next(v for v in value.values() if isinstance(v, list))
    boxes, unusable = [], 0
    for entry in value:
        box = _entry_box(entry)
        if box is None:
            unusable += 1
        else:
            boxes.append(box)
    return boxes, unusable, None


def _looks_like_grounding(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, dict) and "bbox_2d" in v for v in value)
    if isinstance(value, dict):
        return "bbox_2d" in value or any(_looks_like_grounding(v) for v in value.values() if isinstance(v, list))
    return False


def _entry_box(entry: Any) -> GroundedBox | None:
    if not isinstance(entry, dict):
        return None
    coords, label = entry.get("bbox_2d"), entry.get("label")
    if not isinstance(label, str) or not isinstance(coords, list) or len(coords) != 4:
        return None
    numbers = [_finite(v) for v in coords]
    if None in numbers:
        return None
    x1, y1, x2, y2 = numbers
    return GroundedBox((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), label.strip())


def _finite(value: Any) -> float | None:
    """``value`` as a finite float; None for bools, text, NaN, inf and integers too big for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _excerpt(text: str, n: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= n else flat[:n] + "...")
