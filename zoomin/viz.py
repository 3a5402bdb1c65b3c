"""One picture per detection: the image with numbered boxes, the zoomed crops, the verdict and score.

Plain PIL (no matplotlib figure machinery), so ``zoomin detect --save-viz`` stays fast and works
headless. Small images are enlarged so that box numbers and the strip of crops stay legible.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from zoomin.boxes import Box
from zoomin.detector import Detection

MIN_WIDTH = 384
"""Images narrower than this are enlarged (boxes scaled with them) before drawing."""
COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))
_MARGIN = 6
_LINE = 14
_EXPLANATION_LINES = 4


def draw_boxes(image: Image.Image, boxes: list[Box]) -> Image.Image:
    """A copy of ``image`` (enlarged to :data:`MIN_WIDTH` if narrower) with ``boxes`` drawn and
    numbered 1, 2, ... in the colours of their crops (boxes are in ``image``'s pixels)."""
    font = ImageFont.load_default()
    scale = max(1.0, MIN_WIDTH / image.width)
    shown = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)))
    draw = ImageDraw.Draw(shown)
    for i, box in enumerate(boxes, start=1):
        colour = COLOURS[(i - 1) % len(COLOURS)]
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        label = draw.textbbox((x1 + 3, y1 + 2), str(i), font=font)
        draw.rectangle((label[0] - 2, label[1] - 2, label[2] + 2, label[3] + 2), fill=colour)
        draw.text((x1 + 3, y1 + 2), str(i), fill="white", font=font)
    return shown


def crop_strip(crops: list[Image.Image]) -> Image.Image | None:
    """The zoomed crops side by side, each framed and titled "Region i" in its box's colour (None if none)."""
    if not crops:
        return None
    font = ImageFont.load_default()
    strip = Image.new("RGB", (sum(c.width + _MARGIN for c in crops) + _MARGIN,
                              max(c.height for c in crops) + _LINE + 2 * _MARGIN), "white")
    draw = ImageDraw.Draw(strip)
    x, y = _MARGIN, _MARGIN
    for i, crop in enumerate(crops, start=1):
        colour = COLOURS[(i - 1) % len(COLOURS)]
        strip.paste(crop, (x, y + _LINE))
        draw.rectangle((x - 1, y + _LINE - 1, x + crop.width, y + _LINE + crop.height), outline=colour)
        draw.text((x, y), f"Region {i}", fill=colour, font=font)
        x += crop.width + _MARGIN
    return strip


def render(image: Image.Image, detection: Detection) -> Image.Image:
    """The visualisation of ``detection`` on ``image`` (the original the boxes refer to)."""
    font = ImageFont.load_default()
    shown = draw_boxes(image, detection.boxes)
    strip = crop_strip(detection.crops)
    width = max(shown.width, strip.width if strip else 0)
    text_lines = _caption(detection, chars=width // 6)
    height = shown.height + (strip.height if strip else 0) + _LINE * len(text_lines) + _MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(shown, (0, 0))
    y = shown.height + _MARGIN
    if strip:
        canvas.paste(strip, (0, shown.height))
        y = shown.height + strip.height
    draw = ImageDraw.Draw(canvas)
    for line in text_lines:
        draw.text((_MARGIN, y), line, fill="black", font=font)
        y += _LINE
    return canvas


def save(image: Image.Image, detection: Detection, path: str | os.PathLike) -> Path:
    """Render and write a PNG to ``path`` (parent folders are created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    render(image, detection).save(out, format="PNG")
    return out


def _caption(detection: Detection, chars: int) -> list[str]:
    """Verdict line, then the explanation wrapped to ``chars`` (at most a few lines)."""
    verdict = detection.verdict or "no verdict"
    lines = [f"verdict: {verdict}   P(fake) = {detection.score:.3f}   preliminary: {detection.preliminary_verdict or '-'}"]
    if detection.explanation:
        lines += textwrap.wrap(detection.explanation, width=max(20, chars), max_lines=_EXPLANATION_LINES)
    if detection.problems:
        lines.append(f"format problems: {len(detection.problems)}")
    return lines
