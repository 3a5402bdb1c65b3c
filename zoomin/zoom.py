"""The zoom step, between the two queries: located boxes -> crop windows -> zoomed crops -> query 2.

One path for every caller (SFT targets, GRPO rows and rollouts, the detector, evaluation), so a
model is always shown at serving time the crops it was trained on:

1. :func:`decode_located`: query 1's boxes, in the model's coordinates, become original-pixel boxes,
   clamped to the image; boxes that are empty or inverted once clamped are dropped with a reason.
2. :func:`crop_window`: each box is padded, grown to the crop policy's minimum side and kept inside
   the image, as an integer pixel window.
3. :func:`zoom`: the window is cropped at full resolution and sized by the policy
   (:func:`crop_size`): native, small regions magnified, large ones capped. This is what makes a fine
   artifact visible that the processor's resize of the whole image erases; :func:`zoom_factor` says
   by how much.
4. :func:`zoom_in`: query 2's messages and images (the original, then one crop per region, each
   introduced by its box in model coordinates).

:func:`region_columns` is step 2 without pixels, for GRPO rows whose images load lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from zoomin.boxes import Box, box_problem, clamp_box
from zoomin.codecs import MAX_ASPECT_RATIO, decode_with_frame, encode_with_frame
from zoomin.protocol import CropPolicy, ProtocolConfig


def decode_located(
    coords: Sequence[Sequence[float]], image_size: tuple[int, int], protocol: ProtocolConfig
) -> tuple[list[Box], list[str]]:
    """Query-1 boxes (model coordinates) -> clamped original pixels, and why any were dropped."""
    frame = protocol.codec.frame(image_size)
    boxes, dropped = [], []
    for i, c in enumerate(coords, start=1):
        box = clamp_box(decode_with_frame(c, image_size, frame), image_size)
        problem = box_problem(box, image_size)
        if problem:
            dropped.append(f"box {i} dropped: {problem}")
        else:
            boxes.append(box)
    return boxes, dropped


def crop_window(box: Sequence[float], image_size: tuple[int, int], policy: CropPolicy) -> list[int]:
    """The integer pixel window ``[x1, y1, x2, y2]`` cropped for ``box``: padded, grown to the
    minimum side (and, for a sliver of a box, to an aspect ratio the processors take), shifted (not
    shrunk) to stay inside the image, and never larger than the image."""
    w, h = image_size
    x1, y1, x2, y2 = clamp_box(box, image_size)
    pw, ph = (x2 - x1) * policy.pad_ratio, (y2 - y1) * policy.pad_ratio
    min_side = max(policy.min_side, math.ceil(max(x2 - x1, y2 - y1) * (1 + 2 * policy.pad_ratio) / MAX_ASPECT_RATIO))
    left, right = _span(x1 - pw, x2 + pw, min_side, w)
    top, bottom = _span(y1 - ph, y2 + ph, min_side, h)
    return [left, top, right, bottom]


def _span(lo: float, hi: float, min_len: int, limit: int) -> tuple[int, int]:
    """A 1-D interval of at least ``min(min_len, limit)`` integer pixels inside ``[0, limit]``."""
    lo, hi = math.floor(lo), math.ceil(hi)
    need = min(min_len, limit) - (hi - lo)
    if need > 0:
        lo -= need // 2
        hi += need - need // 2
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > limit:
        lo, hi = max(0, lo - (hi - limit)), limit
    return lo, hi


def crop_size(window_size: tuple[int, int], policy: CropPolicy) -> tuple[int, int]:
    """``(width, height)`` of the zoomed crop of a window of ``window_size`` original pixels.

    Fixed zoom (``resize_longest``): the longest side becomes that. Native (the default): the window's
    own size, magnified until its longest side is ``min_longest``, scaled down to ``max_crop_pixels``.
    The short side never falls below 1/200 of the long one (the processors refuse thinner images).
    """
    w, h = window_size
    if policy.resize_longest is not None:
        scale = policy.resize_longest / max(w, h)
    else:
        scale = max(1.0, policy.min_longest / max(w, h))
        if policy.max_crop_pixels is not None and w * h * scale**2 > policy.max_crop_pixels:
            scale = math.sqrt(policy.max_crop_pixels / (w * h))
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    short = math.ceil(max(cw, ch) / MAX_ASPECT_RATIO)
    return (cw, max(ch, short)) if cw >= ch else (max(cw, short), ch)


def zoom(image: Image.Image, window: Sequence[int], policy: CropPolicy) -> Image.Image:
    """The crop of ``image`` at integer ``window``, sized by :func:`crop_size`."""
    crop = image.crop(tuple(window))
    size = crop_size(crop.size, policy)
    return crop if size == crop.size else crop.resize(size, Image.Resampling.BICUBIC)


def zoom_factor(window: Sequence[int], image_size: tuple[int, int], protocol: ProtocolConfig) -> float:
    """How much more detail the model sees of ``window`` in its crop than in the global view.

    Both images go through the processor's resize under the codec's pixel budget: the global view
    shows the window at ``resized(image) / image`` pixels per original pixel, the crop at
    ``resized(crop) / window``. The ratio (geometric mean of width and height) is the zoom: above 1
    the crop shows more than the global view already did; below 1 the method's middle step hides detail.
    """
    codec = protocol.codec
    gw, gh = codec.resized(image_size)
    global_scale = math.sqrt(gw * gh / (image_size[0] * image_size[1]))
    ww, wh = window[2] - window[0], window[3] - window[1]
    pw, ph = codec.resized(crop_size((ww, wh), protocol.crop))
    return math.sqrt(pw * ph / (ww * wh)) / global_scale


def max_crop_tokens(protocol: ProtocolConfig) -> int:
    """The most image tokens one crop can cost under the protocol's crop policy and pixel budget.

    Rollouts choose their crops, so lengths must be bounded for any window: every crop shape the
    policy can produce at its largest (long side ``a``, short side the most its area cap allows, down
    to 1/200 of ``a``) is put through the processor's resize, and the largest count is the bound.
    """
    policy, codec = protocol.crop, protocol.codec
    if policy.resize_longest is not None:
        side = policy.resize_longest
        return max(codec.image_tokens((side, short)) for short in range(max(1, math.ceil(side / MAX_ASPECT_RATIO)), side + 1))
    area = min(policy.max_crop_pixels or codec.max_pixels, codec.max_pixels)
    f = codec.factor
    longest = max(policy.min_longest, math.isqrt(area * MAX_ASPECT_RATIO) + 1)
    # the processor rounds each side to a multiple of f: for each rounded long side, its shortest
    # length leaves the most room for the short side, so only those lengths need trying
    sides = {max(1, math.ceil((k - 0.5) * f)) for k in range(1, longest // f + 2)} | {policy.min_longest}
    most = 0
    for a in sorted(sides):
        short = max(math.ceil(a / MAX_ASPECT_RATIO), min(a, (area + a) // a))
        most = max(most, codec.image_tokens((a, short)))
    return most


def region_columns(
    boxes: Sequence[Sequence[float]], image_size: tuple[int, int], protocol: ProtocolConfig
) -> tuple[list[list[int]], list[list[int]]]:
    """For the first ``max_crops`` original-pixel ``boxes``: the region boxes query 2 introduces (model
    coordinates) and the windows cropped for them. What rewards see as ``region_boxes``/``crop_windows``."""
    kept = list(boxes)[: protocol.crop.max_crops]
    frame = protocol.codec.frame(image_size)
    shown = [encode_with_frame(b, image_size, frame) for b in kept]
    return shown, [crop_window(b, image_size, protocol.crop) for b in kept]


@dataclass
class Zoomed:
    """Query 2 for one image: what is shown, and the crops' provenance."""

    messages: list[dict]
    """Query 2 in chat-message form (images come as the ``images`` list, in order)."""
    images: list[Image.Image]
    """The original, then one zoomed crop per region."""
    region_boxes: list[list[int]]
    """Each region's box in model coordinates, as introduced ("Region i: [...]")."""
    crop_windows: list[list[int]]
    """Each region's crop window in original pixels."""
    located: list[Box] = field(default_factory=list)
    """Every valid located box in original pixels (the first ``max_crops`` are the regions)."""
    dropped: list[str] = field(default_factory=list)
    """Why located boxes were dropped (inverted or empty once clamped)."""

    @property
    def crops(self) -> list[Image.Image]:
        return self.images[1:]


def zoom_in(
    image: Image.Image, boxes: Sequence[Sequence[float]], protocol: ProtocolConfig, locate_answer: str | None = None
) -> Zoomed:
    """Query 2 for original-pixel ``boxes``. ``locate_answer`` is the query-1 answer they came from
    (needed when the protocol runs query 2 in the same conversation)."""
    shown, windows = region_columns(boxes, image.size, protocol)
    crops = [zoom(image, w, protocol.crop) for w in windows]
    messages = protocol.examine_messages(shown, locate_answer)
    return Zoomed(messages, [image, *crops], shown, windows, located=[list(b) for b in boxes])


def zoom_answer(image: Image.Image, locate_answer: str, protocol: ProtocolConfig) -> Zoomed:
    """Query 2 for the boxes a query-1 answer names (an answer without boxes gives no crops)."""
    coords = protocol.parse(locate_answer, "locate").boxes or []
    boxes, dropped = decode_located(coords, image.size, protocol)
    zoomed = zoom_in(image, boxes, protocol, locate_answer)
    zoomed.dropped = dropped
    return zoomed
