"""MagniFake loading and validation: every bad-record kind is reported with where and why."""

import json
import math

import datasets
import numpy as np
import pytest
from PIL import Image

from rl.cli import main
from zoomin.data import DataError, load_records
from zoomin.images import ImageProblem, load_rgb


def _png(path, size=(64, 48), mode="RGB", color=(200, 10, 10)):
    Image.new(mode, size, color).save(path)
    return path.name


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    with path.open("w") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return path


def _rec(i, image, label="fake", boxes=((4, 4, 20, 20),), **extra):
    return {"id": str(i), "image": image, "label": label, "boxes": [list(b) for b in boxes],
            "explanation": "Region 1 shows smeared texture.", **extra}


@pytest.fixture
def good(tmp_path):
    return _png(tmp_path / "good.png")


def _reasons(report):
    return {f.where.split(":")[-1]: f.reason for f in report.findings}


def test_good_records_load(tmp_path, good):
    path = _write(tmp_path, [_rec(1, good), _rec(2, good, label="real", boxes=())])
    records, report = load_records(path)
    assert [r.id for r in records] == ["1", "2"] and report.n_good == 2 and not report.findings
    assert records[0].image_size == (64, 48) and records[0].boxes == [[4.0, 4.0, 20.0, 20.0]]


def test_every_bad_record_kind_is_reported(tmp_path, good):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    Image.new("RGB", (64, 48)).save(tmp_path / "full.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    big = _png(tmp_path / "big.png", size=(300, 300))
    rows = [
        _rec(1, "missing.png"),                                 # line 1
        _rec(2, "empty.png"),                                   # 2
        _rec(3, "trunc.png"),                                   # 3
        _rec(4, "text.png"),                                    # 4
        _rec(5, big),                                           # 5: over the pixel limit
        _rec(6, good, boxes=[(0, 0, 100, 10)]),                 # 6: outside
        _rec(7, good, boxes=[(20, 20, 4, 4)]),                  # 7: inverted
        _rec(8, good, boxes=[(4, 4, 4, 20)]),                   # 8: zero area
        _rec(9, good, boxes=[(math.nan, 0, 4, 4)]),             # 9: NaN
        _rec(10, good, boxes=[(1, 2, 3)]),                      # 10: wrong length
        _rec(11, good, label="Fake"),                           # 11: unknown label
        _rec(12, "../outside.png"),                             # 12: escapes the root
        _rec(13, str(tmp_path / "good.png")),                   # 13: absolute path
        _rec(1, good),                                          # 14: duplicate id
        {"id": "15", "image": good, "label": "real", "boxes": []},   # 15: missing field
        _rec(16, good) | {"boxes": "[[1,2,3,4]]"},              # 16: mistyped field
        '{"id": "17", "image": ',                               # 17: malformed JSON
        "[1, 2]",                                               # 18: not an object
        _rec(19, good, region_notes="smear"),                   # 19: mistyped optional field
    ]
    records, report = load_records(_write(tmp_path, rows), max_pixels=50_000)
    assert records == [] and report.n_records == 19 and report.n_good == 0
    reasons = _reasons(report)
    expected = {
        "1": "not found", "2": "empty (0 bytes)", "3": "truncated", "4": "cannot be decoded",
        "5": "over the limit", "6": "outside", "7": "inverted", "8": "zero area", "9": "NaN",
        "10": "4 numbers", "11": "unknown label 'Fake'", "12": "escapes the dataset root", "13": "absolute",
        "14": "duplicate id '1'", "15": "missing field 'explanation'", "16": "field 'boxes' has type str",
        "17": "malformed JSON", "18": "must be a JSON object", "19": "field 'region_notes'",
    }
    for line, fragment in expected.items():
        assert fragment in reasons[line], (line, reasons[line])
    assert all(f.severity == "error" for f in report.findings)
    assert report.findings[0].where == "data.jsonl:1" and report.findings[0].id == "1"


def test_fake_without_boxes_is_a_warning_not_an_error(tmp_path, good):
    records, report = load_records(_write(tmp_path, [_rec(1, good, boxes=())]))
    assert len(records) == 1
    assert [f.severity for f in report.findings] == ["warning"] and "without boxes" in report.findings[0].reason


def test_strict_loading_stops_on_the_first_bad_record(tmp_path, good):
    path = _write(tmp_path, [_rec(1, good), _rec(2, good, label="maybe"), _rec(3, "missing.png")])
    with pytest.raises(DataError, match=r"data.jsonl:2 \(id 2\).*unknown label"):
        load_records(path, strict=True)


def test_report_file_lists_every_finding(tmp_path, good):
    path = _write(tmp_path, [_rec(1, good), _rec(2, "missing.png"), _rec(3, good, label="x")])
    records, _ = load_records(path, report_path=tmp_path / "out" / "report.json")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(records) == 1 and report["n_good"] == 1 and len(report["findings"]) == 2


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("L", 128, (128, 128, 128)),
        ("RGBA", (255, 0, 0, 0), (255, 255, 255)),   # fully transparent -> white
        ("LA", (0, 255), (0, 0, 0)),
        ("I;16", 65535, (255, 255, 255)),             # 16-bit is scaled, not clipped
        ("I;16", 32896, (128, 128, 128)),
    ],
)
def test_image_modes_become_rgb(tmp_path, mode, value, expected):
    ext = "jpg" if mode == "CMYK" else "png"
    path = tmp_path / f"img.{ext}"
    Image.new(mode, (8, 8), value).save(path, **({"quality": 100} if ext == "jpg" else {}))
    image = load_rgb(path)
    assert image.mode == "RGB"
    assert np.allclose(np.asarray(image)[0, 0], expected, atol=3)


def test_palette_image_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([10, 20, 30] * 256)
    image.save(tmp_path / "p.png", transparency=0)
    assert tuple(np.asarray(load_rgb(tmp_path / "p.png"))[0, 0]) == (255, 255, 255)


def test_exif_rotation_is_applied_and_boxes_refer_to_the_upright_image(tmp_path):
    image = Image.new("RGB", (80, 40), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (40, 80)
    rows = [_rec(1, "rot.jpg", boxes=[(0, 0, 40, 80)]), _rec(2, "rot.jpg", boxes=[(0, 0, 80, 40)])]
    records, report = load_records(_write(tmp_path, rows))
    assert [r.id for r in records] == ["1"] and "outside the 40x80 image" in report.findings[0].reason


def test_load_rgb_accepts_images_and_rejects_bombs():
    assert load_rgb(Image.new("L", (3, 3))).mode == "RGB"
    with pytest.raises(ImageProblem, match="over the limit"):
        load_rgb(Image.new("RGB", (100, 100)), max_pixels=99)


def test_datasets_dataset_source(tmp_path, good):
    rows = [_rec(1, Image.new("RGB", (32, 32))), _rec(2, Image.new("RGB", (32, 32)), boxes=[(0, 0, 64, 64)])]
    ds = datasets.Dataset.from_list(rows)
    records, report = load_records(ds)
    assert [r.id for r in records] == ["1"] and report.findings[0].where == "row 1"
    ds.save_to_disk(tmp_path / "saved")
    records, _ = load_records(tmp_path / "saved")
    assert [r.id for r in records] == ["1"]


def test_cli_validate_exit_codes_and_report(tmp_path, good, capsys):
    ok = _write(tmp_path, [_rec(1, good)], "ok.jsonl")
    assert main(["data", "validate", str(ok)]) == 0
    bad = _write(tmp_path, [_rec(1, good), _rec(2, "nope.png")], "bad.jsonl")
    assert main(["data", "validate", str(bad), "--report", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "bad.jsonl:2 (id 2): error: image file not found" in out and "1 good, 1 bad" in out
    warn = _write(tmp_path, [_rec(1, good, boxes=())], "warn.jsonl")
    assert main(["data", "validate", str(warn)]) == 0
    assert main(["data", "validate", str(warn), "--strict"]) == 1


def test_cli_missing_path_is_one_line(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "nothing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "Traceback" not in err


def test_magnifake_mini_validates_clean(tmp_path):
    from zoomin.synth import synthesize

    synthesize(tmp_path, n=24, seed=3)
    for split in ("train", "test"):
        records, report = load_records(tmp_path / f"{split}.jsonl", strict=True)
        assert report.n_good == report.n_records == len(records) > 0 and not report.findings
