"""The two-stage ZoomIn detector: locate suspicious regions, zoom into them, examine, decide.

Query 1 (locate) asks the model for boxes and a preliminary verdict; the boxes are decoded from the
model's coordinates into original pixels, cropped and zoomed by :mod:`zoomin.zoom` (the path training
uses, so the detector shows exactly the crops the model learned on), and query 2 (examine) gives
the final verdict and explanation.

Both queries run batched with **left** padding: Qwen processors pad on the right by default, which
would make ``generate`` continue after pad tokens. Generation settings come from ``zoomin.json``
alone (plus the model's special-token ids), so a base model's sampling defaults (Qwen ships
``do_sample`` with a temperature and a repetition penalty) cannot leak into a checkpoint's answers.

The verdict *score* is the probability of "fake" that the model itself assigns at the verdict
position, from one extra forward pass; it is what AUROC is computed from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from zoomin.boxes import Box
from zoomin.checkpoint import CheckpointError, CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.images import DEFAULT_MAX_PIXELS, load_rgb
from zoomin.protocol import Parsed, ProtocolConfig
from zoomin.quiet import no_progress_bars
from zoomin.special_tokens import vision_token_ids
from zoomin.zoom import decode_located, zoom_in

ImageInput = Image.Image | str | os.PathLike


@dataclass
class Located:
    """The outcome of query 1 for one image; ``boxes`` are valid, clamped, original pixels."""

    preliminary_verdict: str | None
    boxes: list[Box]
    text: str
    explanation: str | None
    problems: list[str]
    strict: bool
    image_size: tuple[int, int]
    cut: bool = False
    """The answer hit the checkpoint's answer budget (``max_new_tokens``) before its end-of-turn token."""


@dataclass
class Detection:
    """The outcome of both queries for one image.

    ``boxes`` holds every valid located box; the first ``len(crops)`` of them (the crop policy's
    ``max_crops``) were zoomed and shown to query 2 as Region 1, 2, .... ``problems`` lists what the
    parser found wrong with either answer, prefixed by the query; a garbled answer yields
    ``verdict=None`` and problems, never an exception.
    """

    verdict: str | None
    score: float
    """Probability of fake at the verdict position (see :meth:`ZoomInDetector.detect`)."""
    preliminary_verdict: str | None
    boxes: list[Box]
    locate_text: str
    examine_text: str
    locate_explanation: str | None
    explanation: str | None
    crops: list[Image.Image] = field(repr=False)
    problems: list[str]
    image_size: tuple[int, int]
    locate_strict: bool
    examine_strict: bool
    locate_cut: bool = False
    """Query 1's answer hit the checkpoint's locate budget (``max_new_tokens``) unfinished."""
    examine_cut: bool = False
    """Query 2's answer hit the examine budget unfinished: its verdict is likely lost to the cut."""

    def to_dict(self) -> dict:
        """Everything but the crop images (JSON-ready)."""
        d = {k: v for k, v in asdict(self).items() if k != "crops"}
        d["image_size"] = list(self.image_size)
        return d

    def to_json(self) -> str:
        """One line of JSON, without images."""
        return json.dumps(self.to_dict())


class ZoomInDetector:
    """A loaded ZoomIn checkpoint that turns images into :class:`Detection` results."""

    def __init__(self, model, processor, info: CheckpointInfo, max_pixels: int = DEFAULT_MAX_PIXELS):
        from transformers import GenerationConfig

        self.model = model.eval()
        self.processor = processor
        self.info = info
        self.max_pixels = max_pixels
        base = model.generation_config
        ids = {
            "bos_token_id": base.bos_token_id,
            "eos_token_id": base.eos_token_id,
            "pad_token_id": base.pad_token_id if base.pad_token_id is not None else processor.tokenizer.pad_token_id,
        }
        ids["suppress_tokens"] = vision_token_ids(model.config)
        self.generation = {stage: GenerationConfig(**{**ids, **settings}) for stage, settings in info.generation.items()}

    @property
    def protocol(self) -> ProtocolConfig:
        return self.info.protocol

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
    ) -> ZoomInDetector:
        """Load a checkpoint folder. Remote code runs only with ``trust_remote_code=True``.

        Refuses a checkpoint whose processor would resize images otherwise than its saved box codec
        (pixel budget, patch and merge sizes): the model would see other images than it was trained
        on and, for Qwen2.5-VL, boxes would land in the wrong place.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        info = CheckpointInfo.load(directory)
        processor = AutoProcessor.from_pretrained(directory, trust_remote_code=trust_remote_code)
        actual = BoxCodec.from_processor(info.family, processor)
        if actual != info.protocol.codec:
            raise CheckpointError(
                f"{Path(directory) / 'zoomin.json'} was trained with box codec and pixel budget "
                f"{info.protocol.codec.to_dict()} but its processor resizes with {actual.to_dict()}; serving "
                "it so would show the model other images than it learned on"
                + (", and boxes would be decoded wrongly" if info.family == "qwen2_5_vl" else "")
            )
        kwargs = {"dtype": dtype} if dtype is not None else {}
        with no_progress_bars():
            model = AutoModelForImageTextToText.from_pretrained(
                directory, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs
            )
        return cls(model.to(device), processor, info)

    # ---- public API ------------------------------------------------------------------------------
    def locate_only(self, images: list[ImageInput], batch_size: int = 8) -> list[Located]:
        """Query 1 alone (for benchmarking and single-round baselines)."""
        pil = self._load(images)
        return [r for start in range(0, len(pil), batch_size) for r in self._locate(pil[start : start + batch_size])]

    def detect(self, images: list[ImageInput], batch_size: int = 8) -> list[Detection]:
        """Both queries for every image, in order.

        Every image is decoded first, so a bad one raises :class:`zoomin.images.ImageProblem`
        before any model work (callers that want to skip bad images load them with
        :func:`zoomin.images.load_rgb` themselves).

        ``score`` comes from a forward pass over the examine prompt plus the answer up to and
        including the verdict's opening tag; if the answer has no verdict tag, over
        ``<think>{its think text}</think>\\n<verdict>`` instead. The two candidate answers
        ``real_word</verdict>`` and ``fake_word</verdict>`` are tokenized after that prefix; at
        the first token where they differ, the softmax over those two tokens' logits gives the
        probability of fake. (Comparing at the first *differing* token, not at each word's own
        first token, keeps this right when the tokenizer merges the tag's ``>`` into the word.)
        """
        pil = self._load(images)
        out: list[Detection] = []
        for start in range(0, len(pil), batch_size):
            batch = pil[start : start + batch_size]
            out += self.examine(batch, self._locate(batch))
        return out

    # ---- the two queries -------------------------------------------------------------------------
    def _load(self, images: list[ImageInput]) -> list[Image.Image]:
        return [load_rgb(image, self.max_pixels) for image in images]

    def _locate(self, batch: list[Image.Image]) -> list[Located]:
        inputs = self._encode([self.protocol.locate_messages()] * len(batch), [[image] for image in batch])
        results = []
        for image, (text, cut) in zip(batch, zip(*self._generate(inputs, "locate"))):
            parsed = self.protocol.parse(text, "locate")
            boxes, dropped = decode_located(parsed.boxes or [], image.size, self.protocol)
            results.append(Located(
                preliminary_verdict=parsed.verdict,
                boxes=boxes,
                text=text,
                explanation=parsed.think,
                problems=[f"locate: {p}" for p in parsed.problems + dropped],
                strict=parsed.strict,
                image_size=image.size,
                cut=cut,
            ))  # fmt: skip
        return results

    def examine(
        self, batch: list[Image.Image], located: list[Located], regions: list[list[Box]] | None = None
    ) -> list[Detection]:
        """Query 2 for one batch of decoded images after their query-1 results ``located``.

        The crops are of the located boxes, or of ``regions[i]`` (original pixels) when given: the
        random-crop ablation of :func:`zoomin.evaluate.evaluate` shows other crops after the same
        query 1.
        """
        chosen = regions if regions is not None else [loc.boxes for loc in located]
        queries = [zoom_in(image, boxes, self.protocol, loc.text) for image, boxes, loc in zip(batch, chosen, located)]
        inputs = self._encode([q.messages for q in queries], [q.images for q in queries])
        texts, cuts = self._generate(inputs, "examine")
        parsed = [self.protocol.parse(text, "examine") for text in texts]
        scores = self._fake_probabilities(inputs, [self._verdict_prefix(t, p) for t, p in zip(texts, parsed)])
        return [
            Detection(
                verdict=p.verdict,
                score=score,
                preliminary_verdict=loc.preliminary_verdict,
                boxes=loc.boxes,
                locate_text=loc.text,
                examine_text=text,
                locate_explanation=loc.explanation,
                explanation=p.think,
                crops=q.crops,
                problems=loc.problems + [f"examine: {problem}" for problem in p.problems],
                image_size=loc.image_size,
                locate_strict=loc.strict,
                examine_strict=p.strict,
                locate_cut=loc.cut,
                examine_cut=cut,
            )
            for loc, q, text, p, score, cut in zip(located, queries, texts, parsed, scores, cuts)
        ]


    # ---- model calls -----------------------------------------------------------------------------
    def _encode(self, conversations: list[list[dict]], images: list[list[Image.Image]]):
        """Chat template + processor for a batch, left-padded, on the model's device and dtype."""
        texts = self.processor.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
        return inputs.to(device=self.model.device, dtype=self.model.dtype)

    @torch.inference_mode()
    def _generate(self, inputs, stage: str) -> tuple[list[str], list[bool]]:
        """The new text of each row (special tokens such as ``<|im_end|>`` and padding removed), and
        whether it was cut at the answer budget (no end-of-turn token among its new tokens)."""
        config = self.generation[stage]
        new = self.model.generate(**inputs, generation_config=config)[:, inputs["input_ids"].shape[1] :]
        ends = [e for e in (config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id])
                if e is not None]
        if not ends:  # a model without an end token: no answer can be told apart as cut
            cut = [False] * len(new)
        else:
            cut = (~torch.isin(new, torch.tensor(ends, device=new.device)).any(dim=1)).tolist()
        return self.processor.tokenizer.batch_decode(new, skip_special_tokens=True), cut

    def _verdict_prefix(self, text: str, parsed: Parsed) -> str:
        tag = f"<{self.protocol.verdict_tag}>"
        at = text.find(tag)
        if at >= 0:
            return text[: at + len(tag)]
        think = self.protocol.think_tag
        return f"<{think}>{parsed.think or ''}</{think}>\n{tag}"

    @torch.inference_mode()
    def _fake_probabilities(self, inputs, prefixes: list[str]) -> list[float]:
        """P(fake) at the verdict position of each row, by one batched forward pass."""
        tokenizer = self.processor.tokenizer
        close = f"</{self.protocol.verdict_tag}>"
        extras, pairs = [], []
        for prefix in prefixes:
            real, fake = (
                tokenizer(prefix + word + close, add_special_tokens=False)["input_ids"]
                for word in (self.protocol.real_word, self.protocol.fake_word)
            )
            k = next((i for i, (a, b) in enumerate(zip(real, fake)) if a != b), None)
            if k is None:
                raise CheckpointError(f"the tokenizer cannot tell {self.protocol.real_word!r} from "
                                      f"{self.protocol.fake_word!r} after the verdict tag")
            extras.append(real[:k])
            pairs.append((real[k], fake[k]))
        batch = _append_tokens(inputs, extras, tokenizer.pad_token_id)
        logits = self.model(**batch, logits_to_keep=1).logits[:, -1].float()
        pair_ids = torch.tensor(pairs, device=logits.device)
        two = logits.gather(1, pair_ids)
        return torch.softmax(two, dim=-1)[:, 1].tolist()


def _append_tokens(inputs, extras: list[list[int]], pad_id: int) -> dict:
    """A copy of a left-padded batch with ``extras[i]`` appended to row ``i``'s tokens, re-padded left.

    Per-token tensors (integer tensors shaped like ``input_ids``: ``attention_mask``, ``mm_token_type_ids``)
    are re-laid out too: appended tokens are text (type 0) and attended; image tensors are unchanged.
    """
    ids, mask = inputs["input_ids"], inputs["attention_mask"].bool()
    per_token = [k for k, v in inputs.items()
                 if torch.is_tensor(v) and v.shape == ids.shape and not torch.is_floating_point(v)]
    rows = {k: [] for k in per_token}
    for i, extra in enumerate(extras):
        new = torch.tensor(extra, dtype=ids.dtype, device=ids.device)
        for k in per_token:
            kept = inputs[k][i][mask[i]]
            tail = new if k == "input_ids" else torch.full_like(new, 1 if k == "attention_mask" else 0)
            rows[k].append(torch.cat([kept, tail.to(kept.dtype)]))
    width = max(len(r) for r in rows["input_ids"])
    out = dict(inputs)
    for k in per_token:
        fill = pad_id if k == "input_ids" else 0
        out[k] = torch.stack([torch.cat([r.new_full((width - len(r),), fill), r]) for r in rows[k]])
    return out
