"""What a real run brings: the released Qwen processors and photographs of real size and oddity.

Helpers for tests/test_real_processors.py: where the released processor files lie (``../shared``,
absent outside this project's machines, so the tests skip with the reason), a MagniFake folder of
real-resolution images (1-12 MP, aspect ratios from 1:8 to 8:1, some under the processor's minimum),
and the odd files people actually have.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "qwen-processors"
RELEASED = {"qwen2_5_vl": "qwen2_5_vl_7b_instruct", "qwen3_vl": "qwen3_vl_4b_instruct"}
"""Each family's released processor folder; Qwen3-VL-8B ships the 4B's processor and tokenizer."""

SIZES = [(1024, 1024), (2048, 1536), (1536, 2048), (4000, 3000), (512, 4096), (4096, 512), (2800, 350),
         (40, 30), (48, 48)]
"""1 to 12 MP, 1:8 and 8:1, and two images under the released processors' minimum (3,136 and 65,536 px)."""


def released(family: str) -> Path:
    """The released processor folder of ``family``, or a skip saying why it is missing."""
    folder = FIXTURES / RELEASED[family]
    if not folder.is_dir():
        pytest.skip(f"the released processor files are not here ({folder}); they come with the project's shared/ folder")
    return folder


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth, photograph-like image of ``size`` (a blurred colour field plus fine noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8))
    base = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_real_folder(root: Path, sizes: list[tuple[int, int]] = SIZES, seed: int = 0) -> Path:
    """A MagniFake ``train.jsonl`` over JPEG photographs of ``sizes``: fakes with one to three boxes
    (one of them a 50 px detail where the image allows), reals with one region, as in the paper's data."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (w, h) in enumerate(sizes):
        name = f"img{i}.jpg"
        photo((w, h), seed + i).save(root / name, quality=90)
        fake = i % 3 != 2
        side = min(50, w // 2, h // 2)
        boxes = [[w * 0.4, h * 0.4, w * 0.4 + max(side, 1), h * 0.4 + max(side, 1)]]
        if fake and min(w, h) > 200:
            boxes += [[w * 0.05, h * 0.1, w * 0.3, h * 0.35]][: 1 + i % 2]
        boxes = [[round(v, 1) for v in b] for b in boxes]
        rows.append({"id": f"r{i}", "image": name, "label": "fake" if fake else "real", "boxes": boxes,
                     "explanation": " ".join(f"Region {k} shows {'a smeared texture' if fake else 'natural grain'}."
                                             for k in range(1, len(boxes) + 1)),
                     "region_notes": ["smeared texture" if fake else "natural grain"] * len(boxes)})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "train.jsonl"


def write_odd_files(root: Path) -> dict[str, Path]:
    """The odd files of issue 26, by what makes each odd: each either works or is refused alone."""
    root.mkdir(parents=True, exist_ok=True)
    base = photo((300, 200), 7)
    files: dict[str, Path] = {}

    def put(name: str, image: Image.Image, **save) -> None:
        files[name] = root / name
        image.save(files[name], **save)

    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees: the boxes refer to the 200 x 300 view
    put("exif_rotated.jpg", base, exif=exif)
    put("sixteen_bit.png", Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    put("palette.png", palette, transparency=0)
    put("cmyk.jpg", base.convert("CMYK"))
    put("alpha.png", base.convert("RGBA"))
    put("gray.png", base.convert("L"))
    put("one_pixel.png", Image.new("RGB", (1, 1), (200, 10, 10)))
    put("strip_20000x200.png", Image.new("RGB", (20000, 200), (90, 120, 30)))
    put("strip_3000x10.png", Image.new("RGB", (3000, 10), (10, 10, 200)))
    return files
