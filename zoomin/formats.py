"""MagniFake records -> what the trainers eat: SFT conversations and GRPO prompt datasets.

Both queries' targets come from one record:

* locate: ``<think>`` lists the region notes (the cue each box marks), ``<boxes>`` the annotated
  boxes in model coordinates, ``<verdict>`` the label;
* examine: the original image plus one zoomed crop per annotated box, answered by the reference
  explanation and the label.

GRPO rows carry every column a reward needs (label, boxes in original pixels, reference
explanation, original size, coordinate frame, and for examine the regions shown and the windows
cropped) so that no reward loads a processor or guesses a convention. In both, images are decoded
(and crops zoomed) on access, so a 20k-record dataset neither sits decoded in memory nor is
re-encoded before the first step.

Records were validated when loaded, but a file can still change or vanish during a days-long run. An
image that no longer decodes never ends the run and never pairs one record's label with another's
pixels: the row is replaced whole (prompt, answer or reward columns, images) by a spare record that
decoded when the dataset was built, with a warning naming both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from zoomin.codecs import encode_with_frame
from zoomin.data import Record
from zoomin.images import ImageProblem, load_rgb
from zoomin.protocol import ProtocolConfig
from zoomin.zoom import region_columns, zoom

GrpoStage = Literal["locate", "examine", "joint"]
GRPO_STAGES: tuple[str, ...] = ("locate", "examine", "joint")

logger = logging.getLogger(__name__)


def locate_think(record: Record) -> str:
    """The locate target's reasoning: one clause per box, from its region note when there is one."""
    if not record.boxes:
        return "No region shows generation artifacts."
    notes = record.region_notes or []
    parts = [f"Region {i}: {notes[i - 1] if i - 1 < len(notes) else 'suspicious region'}"
             for i in range(1, len(record.boxes) + 1)]
    return "; ".join(parts) + "."


def model_boxes(record: Record, protocol: ProtocolConfig, boxes: Sequence[Sequence[float]] | None = None) -> list[list[int]]:
    """``boxes`` (default: the record's annotations) in the model's coordinates."""
    frame = protocol.codec.frame(record.image_size)
    return [encode_with_frame(b, record.image_size, frame) for b in (record.boxes if boxes is None else boxes)]


def locate_target(record: Record, protocol: ProtocolConfig) -> str:
    """The query-1 answer the annotations call for."""
    return protocol.render_locate(locate_think(record), model_boxes(record, protocol), record.label)


def reference_answers(record: Record, protocol: ProtocolConfig) -> dict[str, str]:
    """Both queries' answers the annotations call for (what SFT teaches), by query."""
    return {"locate": locate_target(record, protocol), "examine": protocol.render_examine(record.explanation, record.label)}


def sft_rows(records: Sequence[Record], protocol: ProtocolConfig, locate_repeats: int = 1) -> list[dict]:
    """The image-free part of the SFT examples, in TRL's prompt-completion form (so SFTTrainer puts the
    loss on the answer tokens only): per record the locate example ``locate_repeats`` times, then the
    examine one (the original plus a zoomed crop per annotated box). Naming boxes is the slower skill
    for a model trained from scratch, and a locate example is the shorter of the two, so repeating it
    buys localisation cheaply."""
    if locate_repeats < 1:
        raise ValueError(f"locate_repeats must be >= 1, got {locate_repeats}")
    rows = []
    for record in records:
        source = _image_columns(record)
        locate_answer = locate_target(record, protocol)
        locate = {**source, "prompt": protocol.locate_messages(), "completion": [_assistant(locate_answer)],
                  "crop_windows": []}
        rows += [locate] * locate_repeats
        shown, windows = region_columns(record.boxes, record.image_size, protocol)
        rows.append({**source, "prompt": protocol.examine_messages(shown, locate_answer),
                     "completion": [_assistant(protocol.render_examine(record.explanation, record.label))],
                     "crop_windows": windows})
    return rows


def sft_dataset(records: Sequence[Record], protocol: ProtocolConfig, locate_repeats: int = 1):
    """A ``datasets.Dataset`` of :func:`sft_rows` whose ``images`` are attached on access: decoding
    and zooming a batch's images costs little beside its step, while storing every image of a
    20k-record set (re-encoded as PNG by ``datasets``) would cost minutes and gigabytes up front.
    An image that stops decoding during the run is handled as in GRPO: a spare row takes its place."""
    import datasets

    ds = datasets.Dataset.from_list(sft_rows(records, protocol, locate_repeats))
    return ds.with_transform(_ImageAttacher(protocol, _spare_row(ds, records, rows_per_record=locate_repeats + 1)))


def grpo_dataset(
    records: Sequence[Record],
    stage: GrpoStage,
    protocol: ProtocolConfig,
    crop_boxes: dict[str, list[list[float]]] | None = None,
):
    """A ``datasets.Dataset`` of GRPO prompts for ``stage`` with the reward columns.

    ``examine`` rows show crops of ``crop_boxes[record.id]`` (original pixels, e.g. found by a
    frozen locator) or, by default, of the annotated boxes; the policy as crop source rewrites them
    at rollout time. ``locate`` and ``joint`` rows start from query 1. Images are attached lazily
    by a dataset transform, which swaps a row whose image stopped decoding for a spare row.
    """
    import datasets

    if stage not in GRPO_STAGES:
        raise ValueError(f"unknown GRPO stage {stage!r}; stages: {', '.join(GRPO_STAGES)}")
    rows = [grpo_row(r, stage, protocol, None if crop_boxes is None else crop_boxes.get(r.id, []))
            for r in records]
    ds = datasets.Dataset.from_list(rows)
    return ds.with_transform(_ImageAttacher(protocol, _spare_row(ds, records)))


def _spare_row(ds, records: Sequence[Record], rows_per_record: int = 1) -> dict[str, Any]:
    """The stored row of the first record whose image decodes now (usually the first record)."""
    for i, record in enumerate(records):
        try:
            record.load_image()
        except ImageProblem:
            continue
        return ds[i * rows_per_record]
    raise ImageProblem("no record's image decodes any more; check the data with `zoomin data validate`")


def _image_columns(record: Record) -> dict[str, Any]:
    """Where a row's image comes from: a path, or the image itself for in-memory records."""
    return {"id": record.id, "image_path": record.image if isinstance(record.image, str) else "",
            "image_inline": None if isinstance(record.image, str) else record.image}


def zoom_columns(
    region_boxes: list[list[int]], crop_windows: list[list[int]], locate_answer: str | None = None
) -> dict[str, Any]:
    """The reward columns that say what query 2 was shown: ``region_boxes`` (model coordinates, as
    introduced), ``crop_windows`` (original pixels, same order) and, when the crops were cut from a
    locate answer generated during the rollout (policy crops, the joint stage), that answer as
    ``locate_completions``.

    The one builder of these columns, for the examine rows of a dataset and for the rows the trainers
    rewrite at rollout time, so a reward reads the same columns under the same names in every stage.
    """
    columns: dict[str, Any] = {"region_boxes": region_boxes, "crop_windows": crop_windows}
    if locate_answer is not None:
        columns["locate_completions"] = locate_answer
    return columns


def grpo_row(
    record: Record, stage: GrpoStage, protocol: ProtocolConfig, crop_boxes: list[list[float]] | None = None
) -> dict:
    """The image-free part of one GRPO row (images are attached on access)."""
    frame = protocol.codec.frame(record.image_size)
    row = {
        **_image_columns(record),
        "label": record.label,
        "boxes": record.boxes,
        "explanation": record.explanation,
        "image_size": list(record.image_size),
        "coord_frame": list(frame),
    }
    if stage == "examine":
        shown, windows = region_columns(record.boxes if crop_boxes is None else crop_boxes, record.image_size,
                                        protocol)
        located = None
        if protocol.examine_in_context:
            if crop_boxes is not None:
                raise ValueError("examine_in_context needs the locate answer the crops came from; "
                                 "use crop_source=policy or annotations")
            located = locate_target(record, protocol)
        row["prompt"] = protocol.examine_messages(shown, located)
        row.update(zoom_columns(shown, windows))
    else:
        row["prompt"] = protocol.locate_messages()
    return row


class _ImageAttacher:
    """Dataset transform adding the ``images`` column: the original, then one zoomed crop per
    ``crop_windows`` entry (examine rows only).

    A row whose image no longer decodes is replaced in every column by ``spare`` (a stored row whose
    image decoded when the dataset was built), so the batch keeps its size, the prompts of a GRPO
    group stay identical and every reward column or SFT target matches the pixels shown. Each bad
    record is logged once per process; ``substituted`` counts the replacements by record id.

    A class rather than a closure so the dataset stays picklable for multi-process data loading.
    """

    def __init__(self, protocol: ProtocolConfig, spare: dict[str, Any]):
        self.protocol = protocol
        self.spare = spare
        self.substituted: dict[str, int] = {}

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        batch = {key: list(values) for key, values in batch.items()}
        images = []
        for i in range(len(batch["image_path"])):
            try:
                images.append(self._images({key: values[i] for key, values in batch.items()}))
            except ImageProblem as e:
                self._report(batch["id"][i], e)
                for key in batch:
                    batch[key][i] = self.spare[key]
                images.append(self._images(self.spare))
        return {**batch, "images": images}

    def _images(self, row: dict[str, Any]) -> list:
        image = load_rgb(row["image_path"] or row["image_inline"])
        return [image, *(zoom(image, w, self.protocol.crop) for w in row.get("crop_windows") or ())]

    def _report(self, record_id: str, problem: ImageProblem) -> None:
        if record_id not in self.substituted:
            logger.warning("row of record %s: its image no longer decodes (%s); record %s takes its "
                           "place (prompt, label, boxes and images)", record_id, problem, self.spare["id"])
        self.substituted[record_id] = self.substituted.get(record_id, 0) + 1


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}
