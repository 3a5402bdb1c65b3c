"""Importers of public grounded datasets, each on a small fixture in the dataset's real layout.

Every conversion rule (polygon -> clipped box, xywh -> xyxy, label mapping, notes, explanations,
ids) and every skip or repair reason is checked, and every imported folder must pass
``zoomin data validate`` as written.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rl.cli import main
from zoomin.data import load_records
from zoomin.importers import import_fakeclue, import_loki, import_swift, import_synthscars, import_xaigd
from zoomin.importers.regions import polygon_box, scaled_box, xywh_box


def _img(path: Path, size=(100, 80), color=(90, 40, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _report(out: Path, split: str) -> dict:
    return json.loads((out / f"{split}.import_report.json").read_text())


def _reasons(entries: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in entries:
        found.setdefault(e["item"], []).append(e["reason"])
    return found


def _validates(path: Path) -> None:
    assert main(["data", "validate", str(path)]) == 0
    records, report = load_records(path)
    assert report.n_good == report.n_records == len(records) and not report.errors


# ---- conversion rules ----------------------------------------------------------------------------
def test_polygon_and_rectangle_conversions():
    assert polygon_box([10, 10, 50, 12, 30, 40], (100, 80)).box == [10, 10, 50, 40]
    assert polygon_box([[10, 10], [50, 12], [30, 40]], (100, 80)).box == [10, 10, 50, 40]
    clipped = polygon_box([-5, 10, 120, 12, 30, 90], (100, 80))
    assert clipped.box == [0, 10, 100, 80] and clipped.clipped
    assert "at least 3" in polygon_box([1, 1, 5, 5], (100, 80)).problem
    assert "odd number" in polygon_box([1, 1, 5, 5, 7], (100, 80)).problem
    assert "degenerate" in polygon_box([5, 5, 5, 20, 5, 30], (100, 80)).problem
    assert "outside the 100x80 image" in polygon_box([120, 5, 130, 20, 125, 30], (100, 80)).problem
    assert "non-finite" in polygon_box([1, 1, float("nan"), 5, 7, 7], (100, 80)).problem
    assert xywh_box([10.5, 20.25, 30, 40], (100, 80)).box == [10.5, 20.25, 40.5, 60.25]
    assert "no area" in xywh_box([10, 10, 0, 5], (100, 80)).problem
    assert scaled_box([100, 250, 500, 1000], (200, 80), (0.2, 0.08)).box == [20, 20, 100, 80]
    assert "inverted" in scaled_box([50, 5, 10, 20], (100, 80), (1, 1)).problem


# ---- SynthScars ----------------------------------------------------------------------------------
def _ref(sentence, explanation, *polygons):
    return {"sentence": sentence, "explanation": explanation, "segmentation": [list(p) for p in polygons]}


def _scar(name, caption, *refs):
    return {"img_file_name": name, "caption": caption, "refs": list(refs)}


@pytest.fixture
def synthscars(tmp_path, bomb_png) -> Path:
    root = tmp_path / "SynthScars"
    images = root / "train" / "images"
    _img(images / "a.png")
    _img(images / "c.png", (60, 60)), _img(images / "c.jpg", (60, 60), (1, 2, 3))
    _img(images / "d.jpg", (50, 50))
    _img(images / "e.png")
    _img(images / "f.png", (40, 40))
    (images / "trunc.png").write_bytes((images / "a.png").read_bytes()[:60])
    bomb_png(images / "bomb.png")
    e = _scar("e.png", "Smeared fur.", _ref("the fur", "the fur is smeared", [1, 1, 20, 1, 10, 20]))
    items = [
        {"0": _scar("a.png", "The hand has six fingers and the sign is garbled.",
                    _ref("the hand", "six fingers", [10, 10, 50, 12, 30, 40]),
                    _ref("the sign", "garbled letters", [60, 5, 70, 5, 65, 15], [80, 20, 120, 25, 90, 30]))},
        {"1": _scar("c.png", "", _ref("the cup", "", [5, 5, 20, 5, 10, 20]))},   # empty caption and explanation
        {"2": _scar("c.jpg", "A jpeg twin.", _ref("x", "y", [1, 1, 9, 1, 5, 9]))},  # the other twin
        {"3": _scar("d.png", "Wrong extension.", _ref("x", "warped", [1, 1, 9, 1, 5, 9]))},
        {"4": e},
        {"5": e},                                                                   # annotated twice
        {"6": _scar("f.png", "Degenerate.", _ref("line", "flat", [5, 5, 5, 20, 5, 30]),
                    _ref("two points", "short", [1, 1, 5, 5]),
                    _ref("ok", "fine", [5, 5, 5, 20, 5, 30], [2, 2, 30, 2, 15, 30]))},
        {"7": _scar("missing.png", "No file.")},
        {"8": _scar("trunc.png", "Truncated.")},
        {"9": _scar("bomb.png", "Header claims 40000x40000.")},
        {"10": {"caption": "no file name"}},
        {"11": _scar("a.png", "x"), "12": _scar("a.png", "y")},                   # not a one-key object
    ]
    (root / "train" / "annoations").mkdir()
    (root / "train" / "annoations" / "train.json").write_text(json.dumps(items))
    _img(root / "test" / "images" / "t.png")
    (root / "test" / "annotations").mkdir()
    (root / "test" / "annotations" / "test.json").write_text(
        json.dumps([{"0": _scar("t.png", "Test split.", _ref("s", "e", [1, 1, 9, 1, 5, 9]))}]))
    return root


def test_synthscars_conversion_and_every_blemish(synthscars, tmp_path):
    out = tmp_path / "out"
    report = import_synthscars(synthscars, out, split="train")
    records = {r["id"]: r for r in _records(out / "train.jsonl")}
    assert sorted(records) == ["synthscars-train-a.png", "synthscars-train-c.jpg", "synthscars-train-c.png",
                               "synthscars-train-d.jpg", "synthscars-train-e.png", "synthscars-train-f.png"]
    a = records["synthscars-train-a.png"]
    assert a["label"] == "fake" and a["source"] == "SynthScars" and a["image"] == "images/train/a.png"
    assert a["boxes"] == [[10, 10, 50, 40], [60, 5, 100, 30]]  # second ref: union of 2 polygons, clipped at x=100
    assert a["region_notes"] == ["six fingers", "garbled letters"]
    assert a["explanation"] == "The hand has six fingers and the sign is garbled."
    c = records["synthscars-train-c.png"]
    assert c["region_notes"] == ["the cup"] and c["explanation"] == "Region 1: the cup."
    assert records["synthscars-train-c.jpg"]["explanation"] == "A jpeg twin."
    assert records["synthscars-train-d.jpg"]["image"] == "images/train/d.jpg"
    assert records["synthscars-train-f.png"]["boxes"] == [[2, 2, 30, 30]]

    skipped = _reasons(report.skipped)
    assert "annotated twice (the same annotation); the annotation at train.json[4] is kept" in skipped["train.json[5]"][0]
    assert "'missing.png' not found" in skipped["train.json[7]"][0]
    assert "truncated or corrupt" in skipped["train.json[8]"][0]
    assert "decompression bomb" in skipped["train.json[9]"][0]
    assert "no 'img_file_name'" in skipped["train.json[10]"][0]
    assert "one-key object" in skipped["train.json[11]"][0]
    repaired = _reasons(report.repaired)
    assert any("box clipped" in r for r in repaired["train.json[0]"])
    assert repaired["train.json[1]"] == ["refs[0] has an empty explanation; its note is 'the cup'",
                                         "empty caption; the explanation is composed from the region notes"]
    assert "annotated as 'd.png', found only d.jpg" in repaired["train.json[3]"][0]
    f_repairs = repaired["train.json[6]"]
    assert "refs[0].segmentation[0] dropped: polygon is degenerate" in f_repairs[0]
    assert "refs[0] dropped: no usable polygon" in f_repairs[1]
    assert "refs[1].segmentation[0] dropped: polygon has 2 point(s)" in f_repairs[2]
    assert "refs[2].segmentation[0] dropped" in f_repairs[4]
    assert report.n_items == 12 and report.n_records == 6 and len(report.skipped) == 6
    assert _report(out, "train")["skipped"] == report.skipped
    _validates(out / "train.jsonl")
    assert not (out / "images" / "train" / "trunc.png").exists()  # a skipped image leaves nothing behind


def test_synthscars_other_spelling_split_folder_and_stable_ids(synthscars, tmp_path):
    report = import_synthscars(synthscars, tmp_path / "one", split="test")
    assert report.n_records == 1 and _records(tmp_path / "one" / "test.jsonl")[0]["id"] == "synthscars-test-t.png"
    import_synthscars(synthscars / "train", tmp_path / "two", split="train")   # the split's own folder
    import_synthscars(synthscars, tmp_path / "three", split="train")
    assert (tmp_path / "two" / "train.jsonl").read_text() == (tmp_path / "three" / "train.jsonl").read_text()
    with pytest.raises(FileNotFoundError, match="no SynthScars annotations"):
        import_synthscars(synthscars, tmp_path / "x", split="val")


def test_link_hard_links_and_copies_across_file_systems(synthscars, tmp_path):
    out = tmp_path / "linked"
    report = import_synthscars(synthscars, out, split="test", link=True)
    assert report.n_linked == 1 and report.n_copied == 0
    assert os.path.samefile(out / "images" / "test" / "t.png", synthscars / "test" / "images" / "t.png")
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to link across")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        report = import_synthscars(synthscars, Path(other), split="test", link=True)
        assert report.n_linked == 0 and report.n_copied == 1 and "copied instead" in report.notes[0]
        assert not os.path.samefile(Path(other) / "images" / "test" / "t.png", synthscars / "test" / "images" / "t.png")
        _validates(Path(other) / "test.jsonl")


# ---- LOKI ----------------------------------------------------------------------------------------
def _tf(path, truth, category, answers=None, typed=True):
    """Both of LOKI's questions about one image (``answers`` overrides the right ones)."""
    shown = ("<image>\nYou have been shown one image, which might be taken from real world or generated by an "
             "advanced AI model. \n")  # LOKI's preamble names both possibilities
    fake_q = shown + "Is this image generated by an AI model? (Answer yes if you think it is synthesized by an AI model)"
    real_q = shown + "Is this image taken from the real world? (Answer yes if you think it is taken from the real world)"
    right = answers or ("Yes" if truth == "fake" else "No", "No" if truth == "fake" else "Yes")
    return [{"image_path": path, "question": fake_q, "answer": right[0],
             "question_type": f"image_tf_image_{truth}_ask_fake_{category}" if typed else ""},
            {"image_path": path, "question": real_q, "answer": right[1],
             "question_type": f"image_tf_image_{truth}_ask_real_{category}" if typed else ""}]


@pytest.fixture
def loki(tmp_path) -> Path:
    root = tmp_path / "LOKI"
    media = root / "media_data" / "image"
    for name in ("u1.png", "u2.png", "u3.png", "real1.jpg", "fake9.png", "clash.png", "typo.png", "twin.png",
                 "twin.jpg"):
        _img(media / name, (120, 90))
    items = [
        {"id": "a1", "image_path": "media_data/image/u1.png", "problems": {
            "regional": [{"region": [10.5, 20.25, 30.0, 40.0], "desc": "The chair floats on water."},
                         {"region": [100.0, 50.0, 40.0, 60.0], "desc": "The window merges with the wall."},
                         {"region": [5.0, 5.0, 0.0, 10.0], "desc": "no area"},
                         {"region": [1.0, 1.0, 4.0, 4.0], "desc": ""}],
            "global": [{"desc": "Objects defy physics."}]}},
        {"id": "a2", "image_path": "media_data/image/u2.png", "problems": {
            "regional": [{"region": [0, 0, 10, 10], "desc": "Melted text."}], "global": [{"desc": ""}]}},
        {"id": "a3", "image_path": "media_data/image/u3.png", "problems": {"regional": [], "global": [{"desc": "x"}]}},
        {"id": "a4", "image_path": "media_data/image/u1.png", "problems": {}},       # listed twice
        {"id": "a5", "image_path": "media_data/image/gone.png", "problems": {}},     # no such file
    ]
    (root / "data_json" / "image").mkdir(parents=True)
    (root / "data_json" / "image" / "open_ended_vqa.json").write_text(json.dumps(items, indent=2), encoding="utf-16")
    tf = (_tf("media_data/image/u1.png", "fake", "animals") + _tf("media_data/image/u3.png", "real", "object")
          + _tf("media_data/image/real1.jpg", "real", "person") + _tf("media_data/image/fake9.png", "fake", "doc")
          + _tf("media_data/image/clash.png", "fake", "sence", answers=("Yes", "Yes"), typed=False)
          + _tf("media_data/image/typo.png", "fake", "sence", answers=("Yes", "Yes"))
          + _tf("media_data/image/twin.png", "fake", "object") + _tf("media_data/image/twin.jpg", "real", "object"))
    (root / "data_json" / "image" / "true_or_false.json").write_text(json.dumps(tf, indent=2))
    return root


def test_loki_utf16_xywh_labels_and_reasons(loki, tmp_path):
    raw = (loki / "data_json" / "image" / "open_ended_vqa.json").read_bytes()
    assert raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # the fixture is in LOKI's encoding
    out = tmp_path / "out"
    report = import_loki(loki, out)
    records = {r["id"]: r for r in _records(out / "test.jsonl")}
    assert sorted(records) == ["loki-u1.png", "loki-u2.png"]
    u1 = records["loki-u1.png"]
    assert u1["label"] == "fake" and u1["source"] == "LOKI/animals" and u1["image"] == "images/test/u1.png"
    assert u1["boxes"] == [[10.5, 20.25, 40.5, 60.25], [100.0, 50.0, 120.0, 90.0], [1.0, 1.0, 5.0, 5.0]]
    assert u1["region_notes"] == ["The chair floats on water.", "The window merges with the wall.",
                                  "suspicious region"]
    assert u1["explanation"] == "Objects defy physics."
    assert records["loki-u2.png"]["explanation"] == "Region 1: Melted text." and records["loki-u2.png"]["source"] == "LOKI"
    repaired = _reasons(report.repaired)
    assert repaired["open_ended_vqa.json[0]"] == [
        "regional[1] reaches past the 120x90 image; box clipped",
        "regional[2] dropped: region [x, y, w, h] = [5.0, 5.0, 0.0, 10.0] has no area",
        "regional[3] has an empty desc; its note is 'suspicious region'"]
    assert "composed from the regional descs" in repaired["open_ended_vqa.json[1]"][0]
    skipped = _reasons(report.skipped)
    assert "labels it real" in skipped["open_ended_vqa.json[2]"][0]
    assert "appears twice" in skipped["open_ended_vqa.json[3]"][0]
    assert "image not found" in skipped["open_ended_vqa.json[4]"][0]
    assert "opposite labels" in skipped["true_or_false.json: media_data/image/clash.png"][0]
    assert "answer says real but question_type 'image_tf_image_fake_ask_real_sence' says fake" in \
        skipped["true_or_false.json[11]"][0]
    _validates(out / "test.jsonl")


def test_loki_all_images_adds_labelled_images_without_regions(loki, tmp_path):
    out = tmp_path / "out"
    import_loki(loki, out, all_images=True)
    records = {r["id"]: r for r in _records(out / "test.jsonl")}
    assert records["loki-real1.jpg"]["label"] == "real" and records["loki-real1.jpg"]["source"] == "LOKI/person"
    assert records["loki-fake9.png"]["label"] == "fake" and records["loki-fake9.png"]["boxes"] == []
    assert records["loki-twin.png"]["label"] == "fake" and records["loki-twin.jpg"]["label"] == "real"  # one uuid
    assert "loki-u3.png" not in records and "loki-clash.png" not in records  # sources disagree: left out, reported
    assert main(["data", "validate", str(out / "test.jsonl")]) == 0  # warnings only: no boxes, no explanation


# ---- X-AIGD --------------------------------------------------------------------------------------
def _png_bytes(size, color=(30, 60, 90)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def xaigd(tmp_path) -> Path:
    """A Hub snapshot of X-AIGD: ``data/labeled_train-*.parquet`` written through `datasets` with its card's features."""
    import datasets

    features = datasets.Features({
        "image": datasets.Image(), "generator": datasets.Value("string"), "uid": datasets.Value("string"),
        "labels": datasets.List({"label": datasets.Value("string"),
                                 "points": datasets.List(datasets.List(datasets.Value("float64")))}),
        "original_prompt": datasets.Value("string"), "width": datasets.Value("int64"),
        "height": datasets.Value("int64"), "image_format": datasets.Value("string"),
    })  # fmt: skip

    def row(uid, size, labels, generator="flux1-dev", data=None, declared=None):
        return {"image": {"bytes": data or _png_bytes(size), "path": f"{uid}.png"}, "generator": generator,
                "uid": uid, "labels": labels, "original_prompt": "a cat", "width": (declared or size)[0],
                "height": (declared or size)[1], "image_format": "PNG"}

    rows = [
        row("u1", (64, 48), [{"label": "low-level-texture", "points": [[4, 4], [30, 6], [20, 30]]},
                             {"label": "cognitive-level-physics", "points": [[50, 40], [70, 44], [60, 60]]}]),
        row("u2", (64, 48), [{"label": "high-level-semantics", "points": [[1, 1], [9, 9]]},
                             {"label": "made-up", "points": [[2, 2], [20, 2], [10, 20]]}], generator="sd35"),
        row("u3", (64, 48), [], declared=(128, 96)),
        row("u4", (64, 48), [], data=b"not an image at all"),
        row("u1", (64, 48), []),
    ]
    snapshot = tmp_path / "X-AIGD"
    (snapshot / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(
        str(snapshot / "data" / "labeled_train-00000-of-00001.parquet"))
    return snapshot


def test_xaigd_parquet_polygons_categories_and_reasons(xaigd, tmp_path):
    out = tmp_path / "out"
    report = import_xaigd(xaigd, out, batch_rows=2)
    records = {r["id"]: r for r in _records(out / "labeled_train.jsonl")}
    assert sorted(records) == ["xaigd-labeled_train-flux1-dev-u1", "xaigd-labeled_train-sd35-u2"]
    u1 = records["xaigd-labeled_train-flux1-dev-u1"]
    assert u1["image"] == "images/labeled_train/flux1-dev/u1.png" and u1["generator"] == "flux1-dev"
    assert u1["boxes"] == [[4, 4, 30, 30], [50, 40, 64, 48]] and u1["label"] == "fake" and u1["source"] == "X-AIGD"
    assert u1["region_notes"] == ["low-level distortion of texture", "cognitive-level violation of physics"]
    assert u1["explanation"] == ("Region 1: low-level distortion of texture. "
                                 "Region 2: cognitive-level violation of physics.")
    assert records["xaigd-labeled_train-sd35-u2"]["region_notes"] == ["made-up"]
    prefix = "labeled_train-00000-of-00001.parquet row "
    repaired, skipped = _reasons(report.repaired), _reasons(report.skipped)
    assert repaired[prefix + "0"] == ["labels[1] reaches past the 64x48 image; box clipped"]
    assert repaired[prefix + "1"] == ["labels[0] dropped: polygon has 2 point(s); a region needs at least 3",
                                      "labels[1] has the unknown category 'made-up', kept as its note"]
    assert "annotated for 128x96 but the image is 64x48" in skipped[prefix + "2"][0]
    assert "cannot be decoded" in skipped[prefix + "3"][0]
    assert "appears twice" in skipped[prefix + "4"][0]
    assert report.n_written == 2 and "no free text" in report.notes[0]
    _validates(out / "labeled_train.jsonl")
    with pytest.raises(FileNotFoundError, match="no parquet files of split 'labeled_test'"):
        import_xaigd(xaigd, tmp_path / "x", split="labeled_test")


# ---- FakeClue ------------------------------------------------------------------------------------
@pytest.fixture
def fakeclue(tmp_path) -> Path:
    root = tmp_path / "FakeClue"
    _img(root / "train" / "doc" / "fake" / "1.png", (50, 40))
    _img(root / "train" / "doc" / "real" / "2.png", (50, 40))
    _img(root / "train" / "animals" / "fake" / "3.png", (50, 40))

    def item(image, label, cate, answer):
        return {"image": image, "label": label, "cate": cate, "width": 50, "height": 40, "conversations": [
            {"from": "human", "value": "<image>\nDoes the image look real or fake?"},
            {"from": "gpt", "value": answer}]}

    items = [item("train/doc/fake/1.png", 0, "doc", "This is a fake image. The letters are garbled."),
             item("train/doc/real/2.png", 1, "doc", "This is a real image. The text is crisp."),
             item("train/animals/fake/3.png", 0, "animals", ""),
             item("train/doc/fake/1.png", 0, "doc", "again"),
             item("train/doc/fake/9.png", 0, "doc", "missing"),
             item("train/doc/real/2.png", 2, "doc", "bad label")]
    (root / "data_json").mkdir()
    (root / "data_json" / "train.json").write_text(json.dumps(items, indent=1))
    return root / "data_json" / "train.json"


def test_fakeclue_labels_explanations_and_reasons(fakeclue, tmp_path):
    out = tmp_path / "out"
    report = import_fakeclue(fakeclue, out)
    records = _records(out / "train.jsonl")
    assert [(r["id"], r["label"], r["source"]) for r in records] == [
        ("fakeclue-train-train_doc_fake_1", "fake", "FakeClue/doc"),
        ("fakeclue-train-train_doc_real_2", "real", "FakeClue/doc"),
        ("fakeclue-train-train_animals_fake_3", "fake", "FakeClue/animals")]
    assert records[0]["explanation"] == "This is a fake image. The letters are garbled." and records[0]["boxes"] == []
    assert records[0]["image"] == "images/train/train/doc/fake/1.png"
    skipped = _reasons(report.skipped)
    assert "appears twice" in skipped["train.json[3]"][0] and "image not found" in skipped["train.json[4]"][0]
    assert "unknown label 2" in skipped["train.json[5]"][0]
    assert "empty explanation" in report.repaired[0]["reason"] and report.repaired[0]["item"] == "train.json[2]"
    assert main(["data", "validate", str(out / "train.jsonl")]) == 0  # warnings only: fakes without boxes


# ---- ms-swift ------------------------------------------------------------------------------------
@pytest.fixture
def swift(tmp_path) -> Path:
    root = tmp_path / "fx"
    _img(root / "imgs" / "1.png", (200, 100))
    _img(root / "imgs" / "2.png", (200, 100))
    _img(root / "imgs" / "3.png", (200, 100))
    _img(root / "imgs" / "4.png", (200, 100))
    rows = [
        {"messages": [{"role": "user", "content": "<image>Is this image real or fake?"},
                      {"role": "assistant", "content": "Fake. <ref-object><bbox> has six fingers and "
                                                       "<ref-object><bbox> is melted."}],
         "images": ["imgs/1.png"],
         "objects": {"ref": ["the left hand", "the clock"], "bbox": [[10, 10, 50, 40], [150, 20, 260, 90]]}},
        {"messages": [{"role": "user", "content": "<image>Find the <ref-object>."},
                      {"role": "assistant", "content": "<bbox><bbox>"}],
         "images": ["imgs/2.png"], "label": "real",
         "objects": {"ref": ["sheep"], "bbox": [[100, 100, 300, 500], [5, 5], [600, 200, 900, 800]],
                     "bbox_type": "norm1000"}},
        {"messages": [], "images": ["imgs/1.png", "imgs/3.png"], "objects": {}},
        "{not json",
        {"messages": [{"role": "assistant", "content": "ok"}], "images": ["imgs/none.png"]},
        {"id": "x", "messages": [{"role": "assistant", "content": "first"}], "images": ["imgs/3.png"]},
        {"id": "x", "messages": [{"role": "assistant", "content": "second"}], "images": ["imgs/4.png"]},
    ]
    path = root / "fakexplained.jsonl"
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_bytes(codecs.BOM_UTF8 + text.encode())
    return path


def test_swift_grounding_placeholders_scales_and_reasons(swift, tmp_path):
    out = tmp_path / "out"
    report = import_swift(swift, out)
    records = {r["id"]: r for r in _records(out / "train.jsonl")}
    assert sorted(records) == ["swift-train-1", "swift-train-2", "swift-train-x"]
    one = records["swift-train-1"]
    assert one["label"] == "fake" and one["boxes"] == [[10, 10, 50, 40], [150, 20, 200, 90]]
    assert one["region_notes"] == ["the left hand", "the clock"]
    assert one["explanation"] == "Fake. the left hand (Region 1) has six fingers and the clock (Region 2) is melted."
    two = records["swift-train-2"]
    assert two["label"] == "real" and two["boxes"] == [[20, 10, 60, 50], [120, 20, 180, 80]]  # 0-1000 grid
    assert two["region_notes"] == ["sheep", "sheep"] and two["explanation"] == "(Region 1)"  # its dropped box left no mention
    repaired, skipped = _reasons(report.repaired), _reasons(report.skipped)
    assert repaired["fakexplained.jsonl:1"] == ["objects.bbox[1] reaches past the 200x100 image; box clipped"]
    assert "objects.bbox[1] dropped: box must be 4 finite numbers" in repaired["fakexplained.jsonl:2"][0]
    assert "exactly one image" in skipped["fakexplained.jsonl:3"][0]
    assert "malformed JSON" in skipped["fakexplained.jsonl:4"][0]
    assert "image not found" in skipped["fakexplained.jsonl:5"][0]
    assert skipped["fakexplained.jsonl:7"] == ["duplicate id 'swift-train-x'"]
    assert records["swift-train-x"]["explanation"] == "first" and records["swift-train-x"]["boxes"] == []
    assert report.n_copied == 3 and not (out / "images" / "train" / "4.png").exists()
    _validates(out / "train.jsonl")


# ---- the commands --------------------------------------------------------------------------------
def test_cli_import_then_validate_and_one_line_errors(synthscars, loki, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "import", "synthscars", str(synthscars), "--out", str(out), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "SynthScars test: 1 source items -> 1 records" in printed and "test.import_report.json" in printed
    assert main(["data", "import", "loki", str(loki), "--out", str(out), "--all-images"]) == 0
    assert main(["data", "validate", str(out / "test.jsonl")]) == 0
    capsys.readouterr()
    for argv in (["data", "import", "fakeclue", str(tmp_path / "nope.json"), "--out", str(out)],
                 ["data", "import", "synthscars", str(synthscars), "--out", str(out), "--split", "val"],
                 ["data", "import", "swift", str(loki), "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("zoomin data import")


def test_cli_import_of_nothing_is_an_error(tmp_path, capsys):
    (tmp_path / "empty.json").write_text("[]")
    assert main(["data", "import", "fakeclue", str(tmp_path / "empty.json"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing imported" in capsys.readouterr().err


def test_to_hf_round_trips_through_the_training_path(synthscars, loki, tmp_path, capsys):
    from huggingface_hub import DatasetCard

    folder = tmp_path / "magnifake"
    import_synthscars(synthscars, folder, split="train")
    import_loki(loki, folder, split="test")
    hf = tmp_path / "hf"
    assert main(["data", "to-hf", str(folder), "--out", str(hf)]) == 0
    assert "splits test, train" in capsys.readouterr().out
    for split in ("train", "test"):
        original, _ = load_records(folder / f"{split}.jsonl")
        loaded, report = load_records(hf / split)
        assert report.n_good == report.n_records == len(original) > 0
        for a, b in zip(original, loaded, strict=True):
            assert (a.id, a.label, a.boxes, a.explanation, a.generator, a.source, a.region_notes, a.image_size) == \
                   (b.id, b.label, b.boxes, b.explanation, b.generator, b.source, b.region_notes, b.image_size)
            assert np.array_equal(np.asarray(a.load_image()), np.asarray(b.load_image()))
    card = DatasetCard.load(str(hf / "README.md"))
    assert card.data.pretty_name == "magnifake" and card.data.license == "other"  # two sources, two licenses
    assert "| train | 6 | 6 | 0 |" in card.text and "SynthScars" in card.text and "LOKI" in card.text
    assert json.loads((hf / "train.import_report.json").read_text())["dataset"] == "SynthScars"
    assert main(["data", "to-hf", str(folder), "--out", str(hf)]) == 2  # never overwrites
    assert "exists and is not empty" in capsys.readouterr().err
