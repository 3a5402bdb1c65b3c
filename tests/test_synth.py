"""MagniFake-mini must be reproducible, well-formed and honest: every planted change lies in a box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from rl.cli import main
from zoomin.synth import ARTIFACT_KINDS, plant_artifact, synthesize, synthesize_zoom_needed

N = 40


def _records(root: Path) -> dict[str, list[dict]]:
    return {
        split: [
            json.loads(line) for line in (root / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        for split in ("train", "test")
    }


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("magnifake_mini")
    return root, synthesize(root, n=N, seed=0)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", n=N, seed=3)
    synthesize(tmp_path / "b", n=N, seed=3)
    synthesize(tmp_path / "c", n=N, seed=4)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a["train.jsonl"] != c["train.jsonl"]
    assert any(a[k] != c[k] for k in a if k.startswith("images/") and k in c)


def test_labels_balanced_in_each_split(built: tuple[Path, dict]) -> None:
    root, summary = built
    for split, rows in _records(root).items():
        n_real = sum(r["label"] == "real" for r in rows)
        n_fake = sum(r["label"] == "fake" for r in rows)
        assert n_real + n_fake == len(rows) > 0
        assert abs(n_real - n_fake) <= 1
        assert summary["splits"][split] == {"total": len(rows), "real": n_real, "fake": n_fake}
    assert summary["splits"]["test"]["total"] == round(N * 0.2)


def test_ids_unique_and_splits_disjoint(built: tuple[Path, dict]) -> None:
    records = _records(built[0])
    train_ids = [r["id"] for r in records["train"]]
    test_ids = [r["id"] for r in records["test"]]
    assert len(set(train_ids)) == len(train_ids) and len(set(test_ids)) == len(test_ids)
    assert not set(train_ids) & set(test_ids)
    assert len({r["image"] for rows in records.values() for r in rows}) == N


def test_images_exist_decode_as_rgb_within_size_limits(built: tuple[Path, dict]) -> None:
    root, _ = built
    for rows in _records(root).values():
        for r in rows:
            with Image.open(root / r["image"]) as image:
                assert image.mode == "RGB"
                assert all(96 <= side <= 160 for side in image.size)
                image.load()


def test_records_follow_the_schema_with_valid_boxes(built: tuple[Path, dict]) -> None:
    root, _ = built
    for r in (r for rows in _records(root).values() for r in rows):
        assert r["source"].startswith("skimage:") and r["explanation"]
        assert len(r["region_notes"]) == len(r["boxes"])
        if r["label"] == "real":
            assert r["boxes"] == [] and r["generator"] is None
            continue
        assert 1 <= len(r["boxes"]) <= 3
        assert r["generator"].startswith("synthetic-")
        width, height = Image.open(root / r["image"]).size
        for i, (x1, y1, x2, y2) in enumerate(r["boxes"], start=1):
            assert all(isinstance(v, float) for v in (x1, y1, x2, y2))
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert x2 - x1 >= 0.15 * width and y2 - y1 >= 0.15 * height
            assert f"Region {i}" in r["explanation"] or f"region {i}" in r["explanation"]


def test_every_artifact_kind_appears(built: tuple[Path, dict]) -> None:
    root, summary = built
    assert len(ARTIFACT_KINDS) >= 5
    assert set(summary["artifact_kinds"]) == set(ARTIFACT_KINDS)
    assert all(count > 0 for count in summary["artifact_kinds"].values())
    n_boxes = sum(len(r["boxes"]) for rows in _records(root).values() for r in rows)
    assert sum(summary["artifact_kinds"].values()) == summary["boxes"] == n_boxes
    generators = {r["generator"] for r in _records(root)["train"] if r["generator"]}
    assert all(any(kind in g for g in generators) for kind in ARTIFACT_KINDS)


def test_meta_and_readme_describe_the_set(built: tuple[Path, dict]) -> None:
    root, summary = built
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    assert meta["summary"] == summary
    assert meta["args"]["n"] == N and meta["args"]["seed"] == 0
    assert "MagniFake-mini" in (root / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[60:188, 160:288])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ARTIFACT_KINDS)
def test_planting_changes_only_the_box(photo: np.ndarray, kind: str, seed: int) -> None:
    box = (30, 40, 90, 96)
    donor = data.coffee()[100:200, 200:300]
    out, note = plant_artifact(photo, box, kind, np.random.default_rng(seed), donor=donor)
    assert out.shape == photo.shape and out.dtype == np.uint8 and note
    inside = np.zeros(photo.shape[:2], dtype=bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    diff = np.abs(out.astype(int) - photo.astype(int))
    assert diff[inside].mean() > 5.0, f"{kind} barely changes its box"
    assert not diff[~inside].any(), f"{kind} leaks outside its box"


def test_plant_artifact_rejects_bad_input(photo: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown artifact kind"):
        plant_artifact(photo, (0, 0, 20, 20), "sparkle", rng)
    with pytest.raises(ValueError, match="inside"):
        plant_artifact(photo, (100, 100, 140, 120), "smear", rng)
    with pytest.raises(ValueError, match="donor"):
        plant_artifact(photo, (0, 0, 20, 20), "inpaint", rng)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 1}, "n must be at least 2"),
        ({"min_side": 200, "max_side": 100}, "must not exceed max_side"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.5}, "test_fraction"),
        ({"min_side": 8, "max_side": 16}, "min_side must be at least"),
        ({"seed": -1}, "seed"),
        ({"kinds": ()}, "kinds must be a non-empty subset"),
        ({"kinds": ("checkerboard", "glitter")}, "kinds must be a non-empty subset"),
        ({"strength": 0.0}, "strength must be positive"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, **kwargs)
    assert not (tmp_path / "train.jsonl").exists()


def test_smallest_set_has_both_splits(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, n=2, min_side=48, max_side=48)
    assert summary["splits"]["train"]["total"] == summary["splits"]["test"]["total"] == 1


def test_strength_changes_only_pixels_inside_boxes(tmp_path: Path) -> None:
    """A bolder set keeps the same images, labels, boxes and texts; only the pixels in boxes differ."""
    synthesize(tmp_path / "default", n=N, seed=5)
    synthesize(tmp_path / "bold", n=N, seed=5, strength=2.5)
    default, bold = _records(tmp_path / "default"), _records(tmp_path / "bold")
    assert json.loads((tmp_path / "bold" / "meta.json").read_text())["args"]["strength"] == 2.5
    changed = 0
    for split in ("train", "test"):
        for a, b in zip(default[split], bold[split], strict=True):
            assert {k: v for k, v in a.items() if k != "region_notes"} == {
                k: v for k, v in b.items() if k != "region_notes"
            }
            pa = np.asarray(Image.open(tmp_path / "default" / a["image"]), dtype=np.int16)
            pb = np.asarray(Image.open(tmp_path / "bold" / b["image"]), dtype=np.int16)
            outside = np.ones(pa.shape[:2], dtype=bool)
            for x1, y1, x2, y2 in (map(int, box) for box in a["boxes"]):
                outside[y1:y2, x1:x2] = False
            assert np.array_equal(pa[outside], pb[outside])
            changed += not np.array_equal(pa, pb)
    assert changed >= sum(r["label"] == "fake" for rows in default.values() for r in rows) // 2


def test_kinds_limit_the_planted_artifacts(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, n=N, seed=5, kinds=("checkerboard", "smear"))
    assert {k for k, v in summary["artifact_kinds"].items() if v} == {"checkerboard", "smear"}
    notes = [n for rows in _records(tmp_path).values() for r in rows for n in r["region_notes"]]
    assert notes and all(n.startswith(("checkerboard", "directional smear")) for n in notes)


def test_strength_scales_the_artifact() -> None:
    photo = np.asarray(data.astronaut()[:64, :64])
    box = (8, 8, 56, 56)
    for kind in ARTIFACT_KINDS:
        donor = np.asarray(data.coffee()[:48, :48]) if kind == "inpaint" else None
        changes = [
            np.abs(plant_artifact(photo, box, kind, np.random.default_rng(1), donor, s)[0].astype(float) - photo).mean()
            for s in (1.0, 3.0)
        ]
        # A pasted patch changes the box wholesale at any strength; only its lighting gain scales.
        assert changes[1] > changes[0] if kind != "inpaint" else changes[1] != changes[0], kind


# ---- the zoom-needed form ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoom_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The zoom-needed set and its twin without the fine pattern (same seed, amplitude 0)."""
    root = tmp_path_factory.mktemp("zoom_needed")
    synthesize_zoom_needed(root / "with", n=16, seed=1, test_fraction=0.25, cues=(1, 3))
    synthesize_zoom_needed(root / "without", n=16, seed=1, test_fraction=0.25, cues=(1, 3), amplitude=0.0)
    return root / "with", root / "without"


def test_zoom_needed_cues_are_annotated_cells_in_both_classes(zoom_pair: tuple[Path, Path]) -> None:
    root, _ = zoom_pair
    rows = [r for split in _records(root).values() for r in split]
    assert {r["label"] for r in rows} == {"real", "fake"}
    for r in rows:
        assert 1 <= len(r["boxes"]) <= 3 and len(r["region_notes"]) == len(r["boxes"])
        for (x1, y1, x2, y2), note in zip(r["boxes"], r["region_notes"]):
            assert x1 % 64 == y1 % 64 == 0 and x2 - x1 == y2 - y1 == 64  # one cell of the 4x4 grid (256 px)
            assert note.endswith(f" at row {int(y1) // 64 + 1}, column {int(x1) // 64 + 1}")  # the cell, in words
        for i in range(1, len(r["boxes"]) + 1):
            assert f"Region {i}" in r["explanation"]  # the explanation cites every cue, real or fake
        assert r["explanation"].endswith(f"the image is {r['label']}.") or f"image is {r['label']}" in r["explanation"]
    assert main(["data", "validate", str(root / "train.jsonl")]) == 0


def test_zoom_needed_pattern_lies_only_in_a_fakes_cues(zoom_pair: tuple[Path, Path]) -> None:
    with_pattern, without = zoom_pair
    for r in _records(with_pattern)["train"]:
        a = np.asarray(Image.open(with_pattern / r["image"]), dtype=np.int16)
        b = np.asarray(Image.open(without / r["image"]), dtype=np.int16)
        mask = np.zeros(a.shape[:2], dtype=bool)
        for x1, y1, x2, y2 in r["boxes"]:
            mask[int(y1) : int(y2), int(x1) : int(x2)] = True
        assert not (a != b).any(axis=-1)[~mask].any()
        assert (a != b).any() == (r["label"] == "fake")


def test_fine_pattern_survives_in_the_zoomed_crop_and_not_in_the_global_view(zoom_pair, tiny_vlm) -> None:
    """The demo's premise, measured through the real processor of the demo's family: the global view
    (16 merged tokens, 128 px, so a 256 px image is halved) loses the pattern, a crop at the cue, with
    the crop policy of the demo's warm-up recipe (which every later stage inherits), keeps it."""
    import yaml
    from transformers import AutoProcessor

    from rl.demo import FAMILY, GLOBAL_TOKENS, RECIPES
    from zoomin.codecs import BoxCodec
    from zoomin.protocol import ProtocolConfig
    from zoomin.zoom import zoom_in

    processor = AutoProcessor.from_pretrained(tiny_vlm(FAMILY, "tiny"))  # `tiny` has the demo's global view
    factor = processor.image_processor.patch_size * processor.image_processor.merge_size
    assert processor.image_processor.size["longest_edge"] == GLOBAL_TOKENS * factor**2
    crop = yaml.safe_load((RECIPES / "warmup.yaml").read_text())["protocol"]["crop"]
    protocol = ProtocolConfig(codec=BoxCodec.from_processor(FAMILY, processor), crop=crop)
    with_pattern, without = zoom_pair

    def pixels(image: Image.Image):
        return processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]

    fakes = [r for r in _records(with_pattern)["train"] if r["label"] == "fake"]
    for r in fakes:
        a, b = (Image.open(root / r["image"]).convert("RGB") for root in zoom_pair)
        scale = float(pixels(b).std())
        global_diff = float((pixels(a) - pixels(b)).pow(2).mean().sqrt()) / scale
        crop_diffs = [float((pixels(x) - pixels(y)).pow(2).mean().sqrt()) / scale for x, y in
                      zip(zoom_in(a, r["boxes"], protocol).crops, zoom_in(b, r["boxes"], protocol).crops)]
        # relative to the image's own spread: under 1% left in the global view, over 10% in every crop
        assert global_diff < 0.01 and min(crop_diffs) > 10 * global_diff and min(crop_diffs) > 0.1, (
            r["id"], global_diff, crop_diffs)


def test_zoom_needed_explanations_never_open_on_the_token_that_ends_an_answer(zoom_pair, tiny_vlm) -> None:
    """Every examine answer ends ``</``, ``verdict``, ``>`` before the end of the turn; an explanation whose
    first token after ``<think`` were that bare ``>`` let the small model's greedy decoding stop there."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_vlm("qwen2_5_vl", "tiny"))
    root, _ = zoom_pair
    bare = tokenizer.convert_tokens_to_ids(">")
    for r in [r for split in _records(root).values() for r in split]:
        ids = tokenizer(f"<think>{r['explanation']}</think>", add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids[:1]) == "<think" and ids[1] != bare, (r["id"], tokenizer.convert_ids_to_tokens(ids[:3]))
