"""The two-query protocol: prompts, target rendering, and a parser that never raises.

Query 1 (*locate*) asks for ``<think>…</think><boxes>[[x1,y1,x2,y2], …]</boxes><verdict>…</verdict>``;
query 2 (*examine*) shows the original image plus one zoomed crop per box, each introduced as
``Region i: [x1,y1,x2,y2]`` in the model's coordinates, and asks for ``<think>…</think><verdict>…</verdict>``.

Everything that shapes the text (tags, label words, prompts, crop policy, box codec) lives in
:class:`ProtocolConfig`, which is saved inside every exported checkpoint so a checkpoint always
carries the prompts it was trained with. This module imports no ML framework: rewards parse
completions with it on the hot path.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Literal

from zoomin.codecs import BoxCodec

Stage = Literal["locate", "examine"]
SCHEMA_VERSION = 1

_NUM = r"-?[0-9]{1,7}(?:\.[0-9]{1,6})?"
"""A coordinate: ASCII digits only and bounded length, so no text can parse to inf or to a
Unicode-digit lookalike."""
_BOX = rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]"
_BOX_LIST = re.compile(rf"\s*\[\s*(?:{_BOX}(?:\s*,\s*{_BOX})*)?\s*\]\s*")
_NUMBER = re.compile(_NUM)
_FLOAT_JSON = json.JSONDecoder(parse_int=float)
"""Reads a checked box list as floats directly (one decoder: ``json.loads`` with options builds one per call)."""


@dataclass
class CropPolicy:
    """How a located box becomes the zoomed crop shown to the examine query.

    Saved inside every checkpoint (via the protocol config), because a model trained on padded crops
    of one size should be served the same crops. The point of the zoom is magnification: a crop must
    show its region with at least the detail the global view gives it (zoom factor >= 1, reported by
    :func:`zoomin.zoom.zoom_factor` and ``zoomin check``). The processor then resizes each crop, like
    any image, into the codec's pixel budget.
    """

    pad_ratio: float = 0.15
    """Context added on every side, as a fraction of the box's width/height."""
    min_side: int = 28
    """Crop windows are grown (around their centre) to at least this many original pixels per side; a
    model's vision patches need a few pixels to see anything."""
    max_crops: int = 4
    """At most this many crops are shown; extra boxes are ignored in order."""
    resize_longest: int | None = None
    """A fixed zoom: every crop is resized so its longest side is this many pixels, whatever its
    region's size. The tiny recipes use it (their processors' global view is 16 tokens, so any crop of
    128 px zooms in). None, the default for real models: the window keeps its native resolution,
    magnified to ``min_longest`` and capped at ``max_crop_pixels``; a 2048 px photograph's global view
    under a 1280-token budget is ~1000 px, so a native crop zooms in by ~2x."""
    min_longest: int = 448
    """Native crops (``resize_longest`` None) whose longest side is shorter are magnified to it: a
    small region gets at least 448 px, 16 Qwen2.5-VL tokens across (14 for Qwen3-VL)."""
    max_crop_pixels: int | None = None
    """Native crops with more pixels are scaled down to this many (a per-crop token budget: tokens x
    (patch x merge)^2); None: only the codec's ``max_pixels`` bounds a crop."""

    def __post_init__(self) -> None:
        if self.pad_ratio < 0:
            raise ValueError(f"crop pad_ratio must be >= 0, got {self.pad_ratio}")
        if self.min_side < 1:
            raise ValueError(f"crop min_side must be >= 1, got {self.min_side}")
        if self.max_crops < 0:
            raise ValueError(f"crop max_crops must be >= 0, got {self.max_crops}")
        if self.resize_longest is not None and self.resize_longest < 1:
            raise ValueError(f"crop resize_longest must be >= 1 or null, got {self.resize_longest}")
        if self.min_longest < 1:
            raise ValueError(f"crop min_longest must be >= 1, got {self.min_longest}")
        if self.max_crop_pixels is not None and self.max_crop_pixels < self.min_longest**2:
            raise ValueError(f"crop max_crop_pixels must be null or at least min_longest squared "
                             f"({self.min_longest**2}: a small region magnified to min_longest), got {self.max_crop_pixels}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProtocolConfig:
    """Tags, label words, prompts, crop policy and box codec of the two-query protocol."""

    codec: BoxCodec = field(default_factory=lambda: BoxCodec("qwen2_5_vl"))
    crop: CropPolicy = field(default_factory=CropPolicy)
    think_tag: str = "think"
    boxes_tag: str = "boxes"
    verdict_tag: str = "verdict"
    real_word: str = "real"
    fake_word: str = "fake"
    real_aliases: list[str] = field(default_factory=lambda: ["authentic", "genuine", "natural", "not fake"])
    fake_aliases: list[str] = field(
        default_factory=lambda: ["generated", "ai-generated", "ai generated", "synthetic", "manipulated", "forged"]
    )
    system_prompt: str | None = None
    locate_prompt: str = (
        "Is this image real or AI-generated? Find the suspicious regions. Answer as "
        "<think>reasoning</think><boxes>[[x1,y1,x2,y2],...] in {coords}</boxes><verdict>real or fake</verdict>"
    )
    examine_prompt: str = (
        "Zoomed views of the regions are shown above. Examine them, cite them as Region i, and answer as "
        "<think>explanation</think><verdict>real or fake</verdict>"
    )
    region_format: str = "Region {i}: {box}"
    examine_in_context: bool = False
    """False: query 2 is its own conversation showing the original image and the crops (the paper's
    two queries). True: query 2 is a second user turn after the locate answer, showing only the
    crops, so one conversation holds the whole trajectory; the ``joint`` GRPO stage needs this."""
    max_boxes: int = 32
    """The parser keeps at most this many boxes (and reports the rest), bounding reward cost."""

    def __post_init__(self) -> None:
        if isinstance(self.codec, dict):
            self.codec = BoxCodec.from_dict(self.codec)
        if isinstance(self.crop, dict):
            self.crop = CropPolicy(**self.crop)
        tags = [self.think_tag, self.boxes_tag, self.verdict_tag]
        if len(set(tags)) != 3 or not all(re.fullmatch(r"[A-Za-z_][\w-]*", t) for t in tags):
            raise ValueError(f"protocol tags must be three distinct identifiers, got {tags}")
        if self.real_word == self.fake_word:
            raise ValueError("protocol real_word and fake_word must differ")
        if "{i}" not in self.region_format or not self.region_format.split("{i}")[0].strip():
            raise ValueError(f"protocol region_format must name the region before {{i}}, got {self.region_format!r}")

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> ProtocolConfig:
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"protocol schema_version {version} is not supported (this code reads {SCHEMA_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown protocol keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ProtocolConfig:
        return cls.from_dict(json.loads(text))

    # ---- labels ----------------------------------------------------------------------------
    @cached_property
    def _label_lookup(self) -> dict[str, str]:
        table = {w.lower(): "real" for w in [self.real_word, *self.real_aliases]}
        table.update({w.lower(): "fake" for w in [self.fake_word, *self.fake_aliases]})
        return table

    def canonical_label(self, word: str) -> str | None:
        """``"real"``/``"fake"`` for a label word or alias (any case), None for anything else."""
        return self._label_lookup.get(word.strip().lower())

    def label_word(self, label: str) -> str:
        """The word the model writes for canonical ``label``."""
        return self.real_word if label == "real" else self.fake_word

    # ---- prompts -------------------------------------------------------------------------------
    def coords_phrase(self) -> str:
        if self.codec.family == "qwen2_5_vl":
            return "pixel coordinates"
        return "coordinates on a 0-1000 grid"

    def locate_messages(self) -> list[dict]:
        """Query 1 in the chat-message format processors and TRL take; the image comes as column."""
        content = [{"type": "image"}, {"type": "text", "text": self.locate_prompt.format(coords=self.coords_phrase())}]
        return self._with_system([{"role": "user", "content": content}])

    def examine_messages(self, region_boxes: list[list[int]], locate_answer: str | None = None) -> list[dict]:
        """Query 2: each crop introduced by its box in model coordinates, then the examine prompt.

        Standalone (``examine_in_context`` false), the original image comes first; in context, the
        conversation starts with query 1 and ``locate_answer`` and the original is not repeated.
        The images (original first, then one crop per region, in order) come as a column.
        """
        content: list[dict] = [] if self.examine_in_context else [{"type": "image"}]
        for i, box in enumerate(region_boxes, start=1):
            content.append({"type": "text", "text": self.region_format.format(i=i, box=_box_text(box))})
            content.append({"type": "image"})
        content.append({"type": "text", "text": self.examine_prompt})
        turn = {"role": "user", "content": content}
        if not self.examine_in_context:
            return self._with_system([turn])
        if locate_answer is None:
            raise ValueError("examine_in_context: query 2 needs the locate answer it follows")
        answer = {"role": "assistant", "content": [{"type": "text", "text": locate_answer}]}
        return [*self.locate_messages(), answer, turn]

    def _with_system(self, messages: list[dict]) -> list[dict]:
        if self.system_prompt:
            return [{"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}, *messages]
        return messages

    # ---- targets ---------------------------------------------------------------------------------
    def render_locate(self, think: str, boxes: list[list[int]], label: str) -> str:
        """A query-1 answer; ``boxes`` are in model coordinates."""
        return (
            f"<{self.think_tag}>{think}</{self.think_tag}>\n"
            f"<{self.boxes_tag}>{_box_list_text(boxes)}</{self.boxes_tag}>\n"
            f"<{self.verdict_tag}>{self.label_word(label)}</{self.verdict_tag}>"
        )

    def render_examine(self, think: str, label: str) -> str:
        return (
            f"<{self.think_tag}>{think}</{self.think_tag}>\n"
            f"<{self.verdict_tag}>{self.label_word(label)}</{self.verdict_tag}>"
        )

    # ---- parsing -------------------------------------------------------------------------------
    @cached_property
    def _citation(self) -> re.Pattern:
        """"Region 3" (per ``region_format``, any case and spacing) in an explanation."""
        words = self.region_format.split("{i}")[0].split()
        return re.compile(r"\b" + r"\s+".join(map(re.escape, words)) + r"\s*([0-9]{1,3})\b", re.IGNORECASE)

    def cited_regions(self, text: str | None) -> set[int]:
        """Region numbers an explanation cites (e.g. "Region 2")."""
        return {int(m) for m in self._citation.findall(text)} if text else set()

    @cached_property
    def _strict_answer(self) -> dict[str, re.Pattern]:
        """Whole-answer patterns of each stage's grammar: one regex pass for well-formed answers.

        A field's value may not contain ``<``, so these patterns match only answers whose every ``<``
        opens or closes one of the stage's tags, once each and in order; anything else (a ``<`` in the
        reasoning, a repeated or foreign tag) goes to the general parser. The ``[^<]*`` runs never
        backtrack, which makes the pass several times faster than lazy ``.*?`` groups.
        """
        t, b, v = (re.escape(x) for x in (self.think_tag, self.boxes_tag, self.verdict_tag))
        think, verdict = rf"\s*<{t}>([^<]*)</{t}>\s*", rf"<{v}>([^<]*)</{v}>\s*"
        return {"locate": re.compile(rf"{think}<{b}>([^<]*)</{b}>\s*{verdict}"),
                "examine": re.compile(think + verdict)}

    def parse(self, text: object, stage: Stage) -> Parsed:
        """Parse a model answer for ``stage``. Never raises: problems are listed, fields left None."""
        if not isinstance(text, str):
            return Parsed(None, None, None, [f"answer is {type(text).__name__}, not text"], False)
        fast = self._parse_well_formed(text, stage)
        return fast if fast is not None else self._parse_any(text, stage)

    def _parse_well_formed(self, text: str, stage: Stage) -> Parsed | None:
        """The answer parsed in one regex pass, or None when it is not a plain well-formed answer
        (then the general parser finds and names every problem)."""
        match = self._strict_answer[stage].fullmatch(text)
        if match is None:
            return None
        groups = match.groups()
        think, verdict_word = groups[0], groups[-1]
        verdict = self.canonical_label(verdict_word)
        if verdict is None or not think.strip():
            return None
        boxes = None
        if stage == "locate":
            boxes, problem = self._parse_boxes(groups[1])
            if problem:
                return None
        return Parsed(think, boxes, verdict, [], True)

    def _parse_any(self, text: str, stage: Stage) -> Parsed:
        wanted = (self.think_tag, self.boxes_tag, self.verdict_tag) if stage == "locate" else (
            self.think_tag, self.verdict_tag)
        problems: list[str] = []
        spans: list[tuple[int, int]] = []
        values: dict[str, str | None] = {}
        for tag in wanted:
            value, span, problem = _extract(text, tag)
            values[tag] = value
            if problem:
                problems.append(problem)
            if span:
                spans.append(span)
        for tag in {self.think_tag, self.boxes_tag, self.verdict_tag} - set(wanted):
            if f"<{tag}>" in text:
                problems.append(f"<{tag}> does not belong in the {stage} answer")

        boxes = None
        if stage == "locate" and values[self.boxes_tag] is not None:
            boxes, problem = self._parse_boxes(values[self.boxes_tag])
            if problem:
                problems.append(problem)
        verdict = None
        if values[self.verdict_tag] is not None:
            verdict = self.canonical_label(values[self.verdict_tag])
            if verdict is None:
                problems.append(f"unknown verdict {values[self.verdict_tag][:40]!r}")
        think = values[self.think_tag]
        if think is not None and not think.strip():
            problems.append("empty <think>")

        strict = not problems and _only_whitespace_outside(text, spans)
        if not problems and not strict:
            problems.append("text outside the tags or tags out of order")
        return Parsed(think, boxes, verdict, problems, strict)

    def _parse_boxes(self, body: str) -> tuple[list[list[float]] | None, str | None]:
        if not _BOX_LIST.fullmatch(body):
            return None, f"boxes are not a list of [x1,y1,x2,y2] numbers: {body[:60]!r}"
        try:  # the grammar is checked; JSON reads it fastest (it refuses leading zeros, hence the fallback)
            boxes = _FLOAT_JSON.decode(body)
        except ValueError:
            nums = [float(n) for n in _NUMBER.findall(body)]
            boxes = [nums[i : i + 4] for i in range(0, len(nums), 4)]
        if len(boxes) > self.max_boxes:
            return boxes[: self.max_boxes], f"{len(boxes)} boxes; only the first {self.max_boxes} are kept"
        return boxes, None


@dataclass(slots=True)
class Parsed:
    """A parsed answer. ``boxes`` are in model coordinates; ``verdict`` is canonical real/fake."""

    think: str | None
    boxes: list[list[float]] | None
    verdict: str | None
    problems: list[str]
    strict: bool
    """True when the answer is exactly the stage's grammar with valid values and nothing else."""


def _extract(text: str, tag: str) -> tuple[str | None, tuple[int, int] | None, str | None]:
    """The content of the single ``<tag>…</tag>`` in ``text``, its span, and a problem if any."""
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    n_open, n_close = text.count(open_t), text.count(close_t)
    if n_open == 0 and n_close == 0:
        return None, None, f"missing <{tag}>"
    start = text.find(open_t)
    end = text.find(close_t, start + len(open_t)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None, None, f"unclosed or unopened <{tag}>"
    value = text[start + len(open_t) : end]
    problem = None
    if n_open > 1 or n_close > 1:
        problem = f"<{tag}> appears more than once (nested or repeated)"
    return value, (start, end + len(close_t)), problem


def _only_whitespace_outside(text: str, spans: list[tuple[int, int]]) -> bool:
    pos = 0
    for start, end in spans:
        if start < pos or text[pos:start].strip():
            return False
        pos = end
    return not text[pos:].strip()


def _box_text(box: list[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in box) + "]"


def _box_list_text(boxes: list[list[int]]) -> str:
    return "[" + ",".join(_box_text(b) for b in boxes) + "]"
