"""MagniFake-mini: a small, deterministic real/fake detection set built offline.

Why it exists: the demo and the tests need MagniFake-format data with *known* evidence boxes, and
the real MagniFake is not public. Real images are random crops of photographs that scikit-image
ships inside its package (no download). Fakes are the same kind of crops with generator-like
artifacts planted in 1-3 known boxes, so every box and every explanation is exact by construction.

Each artifact only rewrites pixels inside its box (see :func:`plant_artifact`), which keeps the
ground truth honest: whatever differs from a plain photograph lies inside an annotated box.
Everything is drawn from one seed, per image from its own child stream, so the same arguments
give byte-identical files.

:func:`synthesize_zoom_needed` builds the *zoom-needed* form, where the second query has something to
add (the paper's central claim at toy scale): every image, real or fake, carries coarse cues (flat
colour patches on a grid of cells) that the model's resized global view shows, and only a fake's cues
hide a fine pixel checkerboard, which the processor's down-scaling of the whole image averages away
while a crop at the cue, shown at full resolution or larger, keeps it. The cues are the annotated
boxes of both classes, so the locate query has places to look but cannot settle the verdict there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance
from scipy import ndimage
from skimage import color, data, draw, filters, transform

ARTIFACT_KINDS: tuple[str, ...] = ("checkerboard", "smear", "inpaint", "warp", "banding")

# Photographs in skimage's own data folder (they load without pooch/network), with a scene noun
# for the templated explanations. Synthetic pictures (chessboard, colorwheel, horse mask...) are
# left out: a "real" image must look like a camera took it.
_SOURCES: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "astronaut": (data.astronaut, "portrait"),
    "camera": (data.camera, "photograph of the cameraman"),
    "chelsea": (data.chelsea, "photograph of the cat"),
    "coffee": (data.coffee, "photograph of the coffee cup"),
    "coins": (data.coins, "photograph of the coins"),
    "rocket": (data.rocket, "photograph of the launch pad"),
    "moon": (data.moon, "lunar surface"),
    "brick": (data.brick, "brick wall"),
    "grass": (data.grass, "grass texture"),
    "gravel": (data.gravel, "gravel texture"),
    "immunohistochemistry": (data.immunohistochemistry, "microscopy image"),
    "motorcycle_left": (lambda: data.stereo_motorcycle()[0], "photograph of the motorcycle"),
    "motorcycle_right": (lambda: data.stereo_motorcycle()[1], "photograph of the motorcycle"),
}

# Box sides as fractions of the image side, and how much two boxes may share (intersection over
# the smaller box): enough room for 3 boxes, never one box hidden in another.
_BOX_SIDE = (0.2, 0.5)
_MAX_OVERLAP = 0.15
_BOX_CANDIDATES = 6
# Blur, warp and banding are invisible on flat sky, so their boxes go to the most textured of
# several candidate positions; checkerboards and pasted patches show anywhere.
_TEXTURE_KINDS = frozenset({"smear", "warp", "banding"})
_MIN_SIDE_LIMIT = 32
_CROP_SCALE = (0.4, 1.0)

_KIND_PHRASES: dict[str, tuple[str, ...]] = {
    "checkerboard": (
        "a periodic checkerboard pattern typical of upsampling layers",
        "a fine grid of repeating pixel blocks, the trace of transposed-convolution upsampling",
        "regular block-wise noise repeating every few pixels, as left by nearest-neighbour upsampling",
    ),
    "smear": (
        "smeared, directionally streaked texture in which fine detail is wiped out",
        "a strong one-directional blur that smudges edges unlike the rest of the photo",
        "texture dragged along one direction, as if smudged by the generator",
    ),
    "inpaint": (
        "a patch whose content, colour and noise do not match its surroundings, as from inpainting",
        "a pasted region with a visible seam and mismatched lighting",
        "content from a different scene blended in with an inconsistent boundary",
    ),
    "warp": (
        "locally warped geometry where lines bend and swirl without a physical cause",
        "rippled, distorted structure in which straight edges wobble",
        "a swirl-like displacement that twists the texture",
    ),
    "banding": (
        "posterised colour banding with flat steps instead of smooth gradients",
        "quantised colours forming hard contour bands",
        "a few flat colour levels with false contours, unlike the smooth tones elsewhere",
    ),
}
_REGION_FRAMES = (
    "Region {i} in the {place} shows {desc}.",
    "In the {place}, region {i} contains {desc}.",
    "Region {i} ({place}) exhibits {desc}.",
)
_FAKE_INTROS = (
    "The image shows localized traces of generation.",
    "Several details betray a synthetic origin.",
    "Looking closely, parts of this picture were not captured by a camera.",
)
_FAKE_OUTROS = (
    "These artifacts are typical of image generators, so the image is fake.",
    "Such local inconsistencies do not occur in camera photographs; the image is fake.",
    "Taken together, the marked regions indicate an AI-generated image.",
)
_REAL_TEXTS = (
    "Texture, lighting and edges are consistent across the {scene}. There is no periodic pattern, "
    "smearing, seam, warping or colour banding, so the image is real.",
    "The {scene} has natural sensor noise and smooth tonal gradients, and its edges are sharp and "
    "coherent everywhere. No region shows generator artifacts; the image is real.",
    "Lighting and shading agree throughout the {scene}, fine texture is continuous and geometry is "
    "undistorted. Nothing suggests generation, so the image is real.",
)


# An artifact maps a float RGB region (0-255), a random stream, an optional donor photo and a
# strength (1 = the default look; larger is bolder) to the altered region and a short note for
# ``region_notes``. Strength scales the drawn intensity after the draw, so the random stream, and
# with it every box and text, is the same at any strength.
_Artifact = Callable[[np.ndarray, np.random.Generator, np.ndarray | None, float], tuple[np.ndarray, str]]


@dataclass(frozen=True)
class _Planted:
    """One planted artifact: where it is, what it is, and its short note."""

    box: tuple[int, int, int, int]
    kind: str
    note: str


# ---------------------------------------------------------------------------------------------
# Artifacts (see _Artifact); each draws its own strength so fakes are not all alike.
# ---------------------------------------------------------------------------------------------


def _checkerboard(
    region: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None, strength: float
) -> tuple[np.ndarray, str]:
    """Add a periodic 2-4 px tile (transposed-conv checkerboard), sometimes on nearest-upsampled content."""
    h, w = region.shape[:2]
    period = int(rng.integers(2, 5))
    amplitude = rng.uniform(10.0, 20.0) * strength  # RMS, in grey levels
    tile = rng.uniform(-1.0, 1.0, size=(period, period, 1))
    tile -= tile.mean()
    tile /= np.sqrt((tile**2).mean())
    pattern = np.tile(tile, (-(-h // period), -(-w // period), 1))[:h, :w]
    if rng.random() < 0.5:
        region = region[::period, ::period].repeat(period, axis=0).repeat(period, axis=1)[:h, :w]
    return region + amplitude * pattern, f"checkerboard upsampling pattern ({period} px period)"


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised straight-line kernel: the point-spread function of a directional smear."""
    size = length | 1
    c, r = size // 2, (length - 1) / 2
    dx, dy = r * np.cos(angle), r * np.sin(angle)
    rr, cc = draw.line(round(c - dy), round(c - dx), round(c + dy), round(c + dx))
    kernel = np.zeros((size, size))
    kernel[rr, cc] = 1.0
    return kernel / kernel.sum()


def _smear(
    region: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None, strength: float
) -> tuple[np.ndarray, str]:
    """Blur strongly along one random direction (9-19 px), like a smudged diffusion texture."""
    length = max(2, round(int(rng.integers(9, 20)) * strength))
    kernel = _line_kernel(length, rng.uniform(0.0, np.pi))
    return ndimage.convolve(region, kernel[..., None], mode="nearest"), f"directional smear (~{length} px)"


def _inpaint(
    region: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None, strength: float
) -> tuple[np.ndarray, str]:
    """Paste the donor photo with a lighting gain and a hard or feathered seam."""
    if donor is None:
        raise ValueError("the 'inpaint' artifact needs a donor image to paste from")
    h, w = region.shape[:2]
    patch = np.asarray(Image.fromarray(donor).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    patch = patch * max(0.1, 1.0 + (rng.uniform(0.8, 1.25) - 1.0) * strength)
    soft = bool(rng.random() < 0.5)
    feather = int(rng.integers(2, max(3, min(h, w) // 6) + 1)) if soft else 0
    alpha = _edge_alpha(h, w, feather)
    seam = "soft" if soft else "hard"
    return alpha * patch + (1.0 - alpha) * region, f"inpainted patch with a {seam} seam"


def _warp(
    region: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None, strength: float
) -> tuple[np.ndarray, str]:
    """Displace pixels by a swirl (strength 4-10) or a sinusoidal ripple (2-5 px amplitude)."""
    h, w = region.shape[:2]
    if rng.random() < 0.5:
        center = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h)
        out = transform.swirl(
            region,
            center=center,
            strength=rng.uniform(4.0, 10.0) * strength,
            radius=rng.uniform(0.5, 0.8) * min(h, w),
            mode="reflect",
            preserve_range=True,
        )
        return out, "local swirl warp"
    amplitude, wavelength = rng.uniform(2.0, 5.0) * strength, rng.uniform(6.0, 16.0)
    phase = rng.uniform(0.0, 2 * np.pi, size=2)

    def ripple(coords: np.ndarray) -> np.ndarray:
        col, row = coords[:, 0], coords[:, 1]
        return np.column_stack(
            (
                col + amplitude * np.sin(2 * np.pi * row / wavelength + phase[0]),
                row + amplitude * np.sin(2 * np.pi * col / wavelength + phase[1]),
            )
        )

    return transform.warp(region, ripple, mode="reflect", preserve_range=True), "local ripple warp"


def _banding(
    region: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None, strength: float
) -> tuple[np.ndarray, str]:
    """Smooth, then posterise each channel to 3-6 levels (fewer when stronger): flat bands, false contours."""
    levels = max(2, round(int(rng.integers(3, 7)) / strength))
    smooth = filters.gaussian(region, sigma=rng.uniform(0.8, 2.0), channel_axis=-1, preserve_range=True)
    step = 255.0 / (levels - 1)
    return np.round(smooth / step) * step, f"colour banding ({levels} levels per channel)"


_ARTIFACTS: dict[str, _Artifact] = {
    "checkerboard": _checkerboard,
    "smear": _smear,
    "inpaint": _inpaint,
    "warp": _warp,
    "banding": _banding,
}


def _edge_alpha(h: int, w: int, feather: int) -> np.ndarray:
    """Blend weight rising from the box edge to 1 over ``feather`` px, so seams can be soft yet stay inside."""
    if feather <= 0:
        return np.ones((h, w, 1))
    dist_y = np.minimum(np.arange(h), np.arange(h)[::-1]) + 1
    dist_x = np.minimum(np.arange(w), np.arange(w)[::-1]) + 1
    return np.clip(np.minimum.outer(dist_y, dist_x) / (feather + 1), 0.0, 1.0)[..., None]


def plant_artifact(
    image: np.ndarray,
    box: tuple[int, int, int, int] | list[float],
    kind: str,
    rng: np.random.Generator,
    donor: np.ndarray | None = None,
    strength: float = 1.0,
) -> tuple[np.ndarray, str]:
    """Return a copy of ``image`` (uint8 HxWx3) with ``kind`` planted in ``box`` and a short note.

    Only pixels inside ``box`` (integer ``[x1, y1, x2, y2]``, x2/y2 exclusive) change, so the box
    is exactly the evidence. ``donor`` is the photo pasted by ``"inpaint"``; ``strength`` scales
    the artifact's intensity (1 is the default look).
    """
    if kind not in _ARTIFACTS:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {ARTIFACT_KINDS}")
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height) or min(x2 - x1, y2 - y1) < 4:
        raise ValueError(
            f"box {list(box)} must lie inside the {width}x{height} image and be at least 4 px wide"
        )
    region = image[y1:y2, x1:x2].astype(np.float64)
    altered, note = _ARTIFACTS[kind](region, rng, donor, strength)
    alpha = _edge_alpha(y2 - y1, x2 - x1, int(rng.integers(0, 3)))
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(np.rint(alpha * altered + (1.0 - alpha) * region), 0, 255).astype(np.uint8)
    return out, note


# ---------------------------------------------------------------------------------------------
# Base images and boxes
# ---------------------------------------------------------------------------------------------


@cache
def _load_source(name: str) -> np.ndarray:
    """A source photograph as uint8 RGB; cached because every image crops one of a dozen photos."""
    image = _SOURCES[name][0]()
    return color.gray2rgb(image) if image.ndim == 2 else image[..., :3]


def _random_crop(source: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Crop a random window with the aspect of ``size`` (40-100% of the largest fit) and resize to it."""
    out_w, out_h = size
    src_h, src_w = source.shape[:2]
    aspect = out_w / out_h
    crop_w = min(src_w, src_h * aspect) * rng.uniform(*_CROP_SCALE)
    crop_h = crop_w / aspect
    x0, y0 = rng.uniform(0.0, src_w - crop_w), rng.uniform(0.0, src_h - crop_h)
    window = (x0, y0, x0 + crop_w, y0 + crop_h)
    return np.asarray(
        Image.fromarray(source).resize(size, Image.Resampling.BICUBIC, box=window, reducing_gap=3.0)
    )


def _base_image(source: str, rng: np.random.Generator, min_side: int, max_side: int) -> np.ndarray:
    """A random view of ``source``: crop, resize, flip and mild brightness/contrast jitter."""
    size = (int(rng.integers(min_side, max_side + 1)), int(rng.integers(min_side, max_side + 1)))
    image = Image.fromarray(_random_crop(_load_source(source), size, rng))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.9, 1.1))
    return np.asarray(image)


def _random_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    bw = int(round(rng.uniform(*_BOX_SIDE) * width))
    bh = int(round(rng.uniform(*_BOX_SIDE) * height))
    x1, y1 = int(rng.integers(0, width - bw + 1)), int(rng.integers(0, height - bh + 1))
    return x1, y1, x1 + bw, y1 + bh


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box: catches a small box swallowed by a big one, unlike IoU."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller


def _place_boxes(
    gray: np.ndarray, kinds: list[str], rng: np.random.Generator
) -> list[tuple[tuple[int, int, int, int], str]]:
    """Give each kind a box that barely overlaps the others; a kind with no room is dropped."""
    height, width = gray.shape
    placed: list[tuple[tuple[int, int, int, int], str]] = []
    for kind in kinds:
        candidates = [_random_box(width, height, rng) for _ in range(_BOX_CANDIDATES)]
        free = [c for c in candidates if all(_overlap(c, box) <= _MAX_OVERLAP for box, _ in placed)]
        if not free:
            continue
        if kind in _TEXTURE_KINDS:
            best = max(free, key=lambda b: float(gray[b[1] : b[3], b[0] : b[2]].std()))
        else:
            best = free[0]
        placed.append((best, kind))
    return placed


def _make_fake(
    base: np.ndarray, primary: str, source: str, rng: np.random.Generator, allowed: Sequence[str], strength: float
) -> tuple[np.ndarray, list[_Planted]]:
    """Plant 1-3 artifacts (the first of kind ``primary``, the others drawn from ``allowed``) in
    ``base``; boxes sorted top to bottom."""
    n_boxes = int(rng.integers(1, 4))
    kinds = [primary] + [str(k) for k in rng.choice(list(allowed), size=n_boxes - 1)]
    placed = sorted(_place_boxes(color.rgb2gray(base), kinds, rng), key=lambda p: (p[0][1], p[0][0]))
    image, planted = base, []
    for box, kind in placed:
        donor = None
        if kind == "inpaint":
            others = sorted(set(_SOURCES) - {source})
            donor = _random_crop(
                _load_source(str(rng.choice(others))), (box[2] - box[0], box[3] - box[1]), rng
            )
        image, note = plant_artifact(image, box, kind, rng, donor, strength)
        planted.append(_Planted(box, kind, note))
    return image, planted


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _place_name(box: tuple[int, int, int, int], width: int, height: int) -> str:
    """Name the ninth of the image holding the box centre, e.g. "upper-left" or "bottom centre"."""
    cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    col = 0 if cx < 1 / 3 else 2 if cx > 2 / 3 else 1
    row = 0 if cy < 1 / 3 else 2 if cy > 2 / 3 else 1
    names = (
        ("upper-left", "top centre", "upper-right"),
        ("centre-left", "centre", "centre-right"),
        ("lower-left", "bottom centre", "lower-right"),
    )
    return names[row][col]


def _fake_explanation(planted: list[_Planted], width: int, height: int, rng: np.random.Generator) -> str:
    sentences = [str(rng.choice(_FAKE_INTROS))]
    for i, art in enumerate(planted, start=1):
        frame = str(rng.choice(_REGION_FRAMES))
        desc = str(rng.choice(_KIND_PHRASES[art.kind]))
        sentences.append(frame.format(i=i, place=_place_name(art.box, width, height), desc=desc))
    sentences.append(str(rng.choice(_FAKE_OUTROS)))
    return " ".join(sentences)


def _real_explanation(source: str, rng: np.random.Generator) -> str:
    return str(rng.choice(_REAL_TEXTS)).format(scene=_SOURCES[source][1])


# ---------------------------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------------------------


def _check_args(
    n: int, seed: int, test_fraction: float, min_side: int, max_side: int, kinds: tuple[str, ...], strength: float
) -> None:
    if n < 2:
        raise ValueError(f"n must be at least 2 (one image per split), got {n}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if min_side < _MIN_SIDE_LIMIT:
        raise ValueError(
            f"min_side must be at least {_MIN_SIDE_LIMIT} px so boxes stay visible, got {min_side}"
        )
    if min_side > max_side:
        raise ValueError(f"min_side ({min_side}) must not exceed max_side ({max_side})")
    unknown = sorted(set(kinds) - set(ARTIFACT_KINDS))
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {ARTIFACT_KINDS}, got {list(kinds)}")
    if not strength > 0:
        raise ValueError(f"strength must be positive, got {strength}")


def _plan(n: int, test_fraction: float, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(split, label) per image: both splits non-empty, labels balanced within each split."""
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    plan = []
    for split, size in (("train", n - n_test), ("test", n_test)):
        labels = ["fake"] * (size // 2) + ["real"] * (size - size // 2)
        plan += [(split, str(label)) for label in rng.permutation(labels)]
    return plan


def _make_record(
    record_id: str,
    label: str,
    primary: str,
    rng: np.random.Generator,
    min_side: int,
    max_side: int,
    kinds: Sequence[str],
    strength: float,
) -> tuple[dict[str, Any], np.ndarray, list[str]]:
    """One record, its image, and the artifact kind of each of its boxes."""
    planted: list[_Planted] = []
    source = str(rng.choice(sorted(_SOURCES)))
    image = _base_image(source, rng, min_side, max_side)
    height, width = image.shape[:2]
    record: dict[str, Any] = {"id": record_id, "image": f"images/{record_id}.png", "label": label}
    if label == "real":
        record.update(
            boxes=[],
            explanation=_real_explanation(source, rng),
            generator=None,
            source=f"skimage:{source}",
            region_notes=[],
        )
    else:
        image, planted = _make_fake(image, primary, source, rng, kinds, strength)
        planted_kinds = list(dict.fromkeys(p.kind for p in planted))
        record.update(
            boxes=[[float(v) for v in p.box] for p in planted],
            explanation=_fake_explanation(planted, width, height, rng),
            generator="synthetic-" + "+".join(planted_kinds),
            source=f"skimage:{source}",
            region_notes=[p.note for p in planted],
        )
    return record, image, [p.kind for p in planted]


def _summary(records: dict[str, list[dict[str, Any]]], kinds: Counter[str]) -> dict[str, Any]:
    splits = {
        split: {"total": len(rows), **{lab: sum(r["label"] == lab for r in rows) for lab in ("real", "fake")}}
        for split, rows in records.items()
    }
    every = [r for rows in records.values() for r in rows]
    return {
        "name": "MagniFake-mini",
        "n": len(every),
        "splits": splits,
        "boxes": sum(len(r["boxes"]) for r in every),
        "artifact_kinds": {k: kinds.get(k, 0) for k in ARTIFACT_KINDS},
        "sources": dict(sorted(Counter(r["source"] for r in every).items())),
    }


def _readme(summary: dict[str, Any], args: dict[str, Any]) -> str:
    splits = summary["splits"]
    kinds = ", ".join(f"{k} {v}" for k, v in summary["artifact_kinds"].items())
    return (
        "# MagniFake-mini\n\n"
        "Synthetic real/fake detection set built offline by `zoomin.synth.synthesize`.\n"
        "Real images are random crops of photographs shipped with scikit-image; fakes are such crops with\n"
        "generator-like artifacts (checkerboard, smear, inpaint, warp, banding) planted in 1-3 known boxes.\n"
        "Every pixel a fake changes lies inside one of its boxes. Records follow the MagniFake schema.\n\n"
        f"- train: {splits['train']['total']} ({splits['train']['real']} real, {splits['train']['fake']} fake)\n"
        f"- test: {splits['test']['total']} ({splits['test']['real']} real, {splits['test']['fake']} fake)\n"
        f"- boxes: {summary['boxes']} ({kinds})\n"
        f"- arguments: {json.dumps(args, sort_keys=True)}\n"
    )


def synthesize(
    out_dir: str | Path,
    n: int = 400,
    seed: int = 0,
    test_fraction: float = 0.2,
    min_side: int = 96,
    max_side: int = 160,
    kinds: Sequence[str] = ARTIFACT_KINDS,
    strength: float = 1.0,
) -> dict:
    """Write out_dir/{train,test}.jsonl and out_dir/images/*.png; return a summary dict
    (counts per split and label, artifact kind counts).

    ``kinds`` limits the artifacts planted and ``strength`` scales their intensity: a model
    trained from random weights on a CPU needs a bolder, narrower task than a pretrained one
    (see ``rl/demo.py``). Also writes ``README.md`` and ``meta.json`` (summary + arguments). Same
    arguments give byte-identical files; existing files of the same names are overwritten,
    others left alone.
    """
    kinds = tuple(kinds)
    _check_args(n, seed, test_fraction, min_side, max_side, kinds, strength)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    plan_seq, *image_seqs = np.random.SeedSequence(seed).spawn(n + 1)
    plan = _plan(n, test_fraction, np.random.default_rng(plan_seq))
    records: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    n_fakes, planted = 0, Counter[str]()
    for (split, label), seq in zip(plan, image_seqs):
        record_id = f"{split}_{len(records[split]):05d}"
        primary = kinds[n_fakes % len(kinds)]  # cycling guarantees every kind appears
        n_fakes += label == "fake"
        record, image, box_kinds = _make_record(
            record_id, label, primary, np.random.default_rng(seq), min_side, max_side, kinds, strength
        )
        planted.update(box_kinds)
        # Level 1: PNG encoding dominated the run time, and size is no concern at this scale.
        Image.fromarray(image).save(out / record["image"], format="PNG", compress_level=1)
        records[split].append(record)
    summary = _summary(records, planted)
    args = {"n": n, "seed": seed, "test_fraction": test_fraction, "min_side": min_side, "max_side": max_side,
            "kinds": list(kinds), "strength": strength}
    _write(out, records, summary, args, _readme(summary, args))
    return summary


def _write(out: Path, records: dict[str, list[dict[str, Any]]], summary: dict, args: dict, readme: str) -> None:
    """The split files, ``meta.json`` (summary + arguments) and ``README.md``; images are written already."""
    for split, rows in records.items():
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    (out / "meta.json").write_text(json.dumps({"args": args, "summary": summary}, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(readme, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The zoom-needed form
# ---------------------------------------------------------------------------------------------

_CUE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (180, 70, 70), "orange": (190, 120, 60), "yellow": (180, 170, 70), "green": (80, 160, 80),
    "teal": (70, 150, 150), "blue": (70, 100, 180), "purple": (130, 80, 170), "grey": (128, 128, 128),
}
"""Named cue colours, inside [70, 190] per channel ([58, 202] after ``_CUE_JITTER``), so a fine pattern
of +-amplitude seldom clips (clipping would shift the patch's mean, which the global view would then
show): at the default amplitude 5e-5 of fake-cue pixels clip (seed 0, train split)."""
_CUE_JITTER = 12
_CUE_NOISE = 2.0
"""Grey levels of sensor-like noise in every cue, real or fake, so a clean patch is not perfectly flat."""
ZOOM_AMPLITUDE = 40.0
"""The fine pattern's default +- grey levels. At 24 the demo's from-scratch tower learnt it within its
3-epoch warm-up on some seeds only (crop accuracy 1.00 on seed 1, chance on seed 2 even at 3x the
learning rate); at 40 seed 2 learns it in the first 50 steps. The global view still averages it away."""
_ZOOM_FAKE_TEXTS = (
    "The zoomed crops show that {regions} {hide} a fine checkerboard of alternating pixels under the flat "
    "colour, the trace of an upsampling layer; the image is fake.",
    "The crops at full resolution show that {regions} {carry} a regular one-pixel grid pattern that no camera "
    "produces, so the image is fake.",
    "The crops reveal that {regions} {hide} a fine pixel checkerboard beneath the flat patch; such upsampling "
    "traces mean the image is fake.",
)
_ZOOM_REAL_TEXTS = (
    "The zoomed crops show that {regions} {be} clean: flat colour with smooth sensor noise and no pixel pattern; "
    "the image is real.",
    "The crops at full resolution show that {regions} {carry} only natural noise in a flat colour, with no regular "
    "grid, so the image is real.",
    "The crops show that {regions} {be} plain patches with smooth noise and nothing periodic; the image is real.",
)
"""Every explanation opens with "The": Qwen's pre-tokenizer splits ``<think>The`` into ``<think`` and
``>The``, while an opening such as "Zoomed" leaves a bare ``>``, the token that ends every answer
(``</verdict>`` is ``</``, ``verdict``, ``>``, then the end of the turn). With such openings the demo's
small SFT model, decoding greedily, ended 40 of 64 test examine answers right after ``<think>``."""


def _regions_phrase(k: int) -> str:
    """ "Region 1", "Region 1 and Region 2", "Region 1, Region 2 and Region 3": each region cited by name."""
    names = [f"Region {i}" for i in range(1, k + 1)]
    return names[0] if k == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _verbs(k: int) -> dict[str, str]:
    singular = k == 1
    return {"show": "shows" if singular else "show", "carry": "carries" if singular else "carry",
            "hide": "hides" if singular else "hide", "be": "is" if singular else "are"}


def fine_checkerboard(height: int, width: int, phase: int) -> np.ndarray:
    """+-1 alternating per pixel: the finest pattern an upsampling layer leaves, at exactly the
    frequency that any 2x down-scaling (area or antialiased) averages to nothing."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.where((yy + xx + phase) % 2 == 0, 1.0, -1.0)[..., None]


def cue_note(colour: str, row: int, col: int) -> str:
    """A cue's region note: what it looks like, then where it is (grid row and column from 1, top left).

    The place in words is what makes the demo's from-scratch locate stage reliable: the locate
    answer's ``<think>`` names each region's colour, row and column before ``<boxes>``, so the
    language model reads a cue's column into one word, bound to the colour it has just named, and
    the box coordinates copy that word. With the colour alone, whether the small model learnt to
    read columns at all swung with the seed and the recipe (seed 1, one-cue test images: first box in
    the right column 0.91 after the demo's SFT, 0.38 after 4 epochs of 2 locate repeats), and on
    two-cue images the first box was an annotated cell only 0.53 of the time (0.97 with the words).
    BENCHMARKS.md "Demo over seeds" has the figures.
    """
    return f"flat {colour} patch at row {row + 1}, column {col + 1}"


def _zoom_record(
    record_id: str, label: str, rng: np.random.Generator, side: int, grid: int, cues: tuple[int, int],
    amplitude: float,
) -> tuple[dict[str, Any], np.ndarray]:
    """One zoom-needed record and its image: cues on distinct grid cells, a fine checkerboard in a fake's."""
    source = str(rng.choice(sorted(_SOURCES)))
    image = _base_image(source, rng, side, side).astype(np.float64)
    cell = side // grid
    k = int(rng.integers(cues[0], cues[1] + 1))
    cells = sorted(int(c) for c in rng.choice(grid * grid, size=k, replace=False))
    boxes, notes = [], []
    for c in cells:
        row, col = divmod(c, grid)
        x1, y1 = col * cell, row * cell
        name = str(rng.choice(sorted(_CUE_COLOURS)))
        colour = np.asarray(_CUE_COLOURS[name], dtype=np.float64) + rng.integers(-_CUE_JITTER, _CUE_JITTER + 1, 3)
        patch = colour + rng.normal(0.0, _CUE_NOISE, size=(cell, cell, 1))
        pattern = fine_checkerboard(cell, cell, int(rng.integers(0, 2))) * amplitude * rng.uniform(0.8, 1.2)
        if label == "fake":
            patch = patch + pattern
        image[y1 : y1 + cell, x1 : x1 + cell] = patch
        boxes.append([float(x1), float(y1), float(x1 + cell), float(y1 + cell)])
        notes.append(cue_note(name, row, col))
    texts = _ZOOM_FAKE_TEXTS if label == "fake" else _ZOOM_REAL_TEXTS
    explanation = str(rng.choice(texts)).format(regions=_regions_phrase(k), **_verbs(k))
    record = {
        "id": record_id, "image": f"images/{record_id}.png", "label": label, "boxes": boxes,
        "explanation": explanation, "generator": "synthetic-fine-checkerboard" if label == "fake" else None,
        "source": f"skimage:{source}", "region_notes": notes,
    }
    return record, np.clip(np.rint(image), 0, 255).astype(np.uint8)


def synthesize_zoom_needed(
    out_dir: str | Path,
    n: int = 400,
    seed: int = 0,
    test_fraction: float = 0.2,
    side: int = 256,
    grid: int = 4,
    cues: tuple[int, int] = (1, 2),
    amplitude: float = ZOOM_AMPLITUDE,
) -> dict:
    """Write the zoom-needed MagniFake-mini to ``out_dir`` (``{train,test}.jsonl``, ``images/``,
    ``meta.json``, ``README.md``) and return its summary.

    Square images of ``side`` px; ``cues`` (min, max) coarse cues per image, each filling one cell of a
    ``grid`` x ``grid`` layout (so every annotated box is a cell: coordinates a small language model
    can learn to write), with a region note naming its colour and cell (:func:`cue_note`). Every
    pixel of a fake's cue carries a +-``amplitude`` grey-level checkerboard of one-pixel period, and
    nothing else tells the classes apart. Pick ``side`` larger than the model's global view: the
    demo's Qwen3-VL sees 128 px (16 merged tokens), so at 256 px the processor halves the image and
    the pattern averages out, while a crop at a cue, zoomed to 128 px, keeps it.
    Same arguments give byte-identical files; ``amplitude=0`` gives the same images without the pattern.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (one image per split), got {n}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if grid < 1 or side % grid or side // grid < _MIN_SIDE_LIMIT // 2:
        raise ValueError(f"side ({side}) must split into {grid} cells per side of at least "
                         f"{_MIN_SIDE_LIMIT // 2} px")
    if not 1 <= cues[0] <= cues[1] <= grid * grid:
        raise ValueError(f"cues must be (min, max) with 1 <= min <= max <= {grid * grid}, got {tuple(cues)}")
    if not 0.0 <= amplitude <= 60.0:
        raise ValueError(f"amplitude must lie in [0, 60] grey levels (more would clip widely), got {amplitude}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    plan_seq, *image_seqs = np.random.SeedSequence(seed).spawn(n + 1)
    records: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for (split, label), seq in zip(_plan(n, test_fraction, np.random.default_rng(plan_seq)), image_seqs):
        record, image = _zoom_record(f"{split}_{len(records[split]):05d}", label, np.random.default_rng(seq),
                                     side, grid, (int(cues[0]), int(cues[1])), amplitude)
        Image.fromarray(image).save(out / record["image"], format="PNG", compress_level=1)
        records[split].append(record)
    every = [r for rows in records.values() for r in rows]
    summary = {
        "name": "MagniFake-mini (zoom-needed)",
        "n": len(every),
        "splits": {split: {"total": len(rows), **{lab: sum(r["label"] == lab for r in rows) for lab in ("real", "fake")}}
                   for split, rows in records.items()},
        "boxes": sum(len(r["boxes"]) for r in every),
        "sources": dict(sorted(Counter(r["source"] for r in every).items())),
    }
    args = {"n": n, "seed": seed, "test_fraction": test_fraction, "side": side, "grid": grid,
            "cues": list(cues), "amplitude": amplitude}
    splits = summary["splits"]
    readme = (
        "# MagniFake-mini, zoom-needed form\n\n"
        "Synthetic real/fake set built offline by `zoomin.synth.synthesize_zoom_needed`. Every image is a\n"
        "crop of a photograph shipped with scikit-image carrying coarse cues (flat colour patches on a grid,\n"
        "the annotated boxes of real and fake images alike); only a fake's cues hide a one-pixel checkerboard,\n"
        "which the model's down-scaled global view averages away and a zoomed crop keeps.\n\n"
        f"- train: {splits['train']['total']} ({splits['train']['real']} real, {splits['train']['fake']} fake)\n"
        f"- test: {splits['test']['total']} ({splits['test']['real']} real, {splits['test']['fake']} fake)\n"
        f"- boxes: {summary['boxes']}\n"
        f"- arguments: {json.dumps(args, sort_keys=True)}\n"
    )
    _write(out, records, summary, args, readme)
    return summary
