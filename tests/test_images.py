"""No image file ends a run: a PNG whose header claims more pixels than Pillow's own bomb limit, and
images that stop decoding after validation, in every path (validate, training load, GRPO rows,
SFT, warm-up, detect, eval)."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor

from rl.cli import main
from rl.config import DataArguments
from rl.modeling import load_training_records
from rl.warmup import ArtifactMaps
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import load_records
from zoomin.evaluate import evaluate
from zoomin.formats import grpo_dataset, sft_dataset, sft_rows
from zoomin.images import ImageProblem, load_rgb
from zoomin.protocol import ProtocolConfig


def _good(path, size=(64, 48), color=(120, 30, 200)):
    Image.new("RGB", size, color).save(path)
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rec(i, image, label="fake", boxes=((4, 4, 20, 20),)):
    return {"id": str(i), "image": image, "label": label, "boxes": [list(b) for b in boxes],
            "explanation": f"Region 1 of record {i} is smeared."}


@pytest.fixture
def data(tmp_path, bomb_png):
    """Three records; the second's image is a bomb over Pillow's error limit."""
    _good(tmp_path / "a.png")
    bomb_png(tmp_path / "bomb.png")
    _good(tmp_path / "c.png", color=(10, 200, 10))
    return _jsonl(tmp_path / "data.jsonl", [_rec(1, "a.png"), _rec(2, "bomb.png"), _rec(3, "c.png", "real", ())])


def test_the_fixture_is_over_pillows_error_limit():
    assert 2 * Image.MAX_IMAGE_PIXELS < 40_000 * 40_000


def test_bomb_over_pillows_limit_is_an_image_problem(tmp_path, bomb_png):
    with pytest.raises(ImageProblem, match="decompression bomb"):
        load_rgb(bomb_png(tmp_path / "bomb.png"))


def test_pillows_warning_does_not_leak_and_our_limit_decides(tmp_path, bomb_png):
    path = bomb_png(tmp_path / "big.png", 10_000, 10_000)  # between Pillow's warning and error limits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would raise here
        with pytest.raises(ImageProblem, match="over the limit of 64000000"):
            load_rgb(path)
        # allowed by our limit, so it is decoded, and found to be truncated (its IDAT is tiny)
        with pytest.raises(ImageProblem, match="truncated or corrupt"):
            load_rgb(path, max_pixels=200_000_000)


def test_validate_prints_the_finding_and_exits_1(data, capsys):
    assert main(["data", "validate", str(data)]) == 1
    out, err = capsys.readouterr()
    assert "data.jsonl:2 (id 2): error: image refused as a possible decompression bomb" in out
    assert "3 records, 2 good, 1 bad" in out and "Traceback" not in out + err


def test_training_load_skips_it_with_a_finding(data, tmp_path):
    records, report = load_records(data)
    assert [r.id for r in records] == ["1", "3"]
    assert [f.where for f in report.errors] == ["data.jsonl:2"] and "bomb" in report.errors[0].reason
    loaded = load_training_records(DataArguments(train_data=str(data)), str(tmp_path / "run"))
    assert [r.id for r in loaded] == ["1", "3"]
    saved = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert saved["n_good"] == 2 and "decompression bomb" in saved["findings"][0]["reason"]


def _records_then_break(tmp_path, bomb_png, n=4):
    """``n`` validated records; then record 2's image is replaced by a bomb (as if changed on disk)."""
    rows = [_rec(i, _good(tmp_path / f"{i}.png", color=(40 * i, 0, 0)).name, "fake" if i % 2 else "real",
                 [(2 * i, 2, 2 * i + 10, 12)] if i % 2 else ()) for i in range(1, n + 1)]
    records, _ = load_records(_jsonl(tmp_path / "d.jsonl", rows))
    assert len(records) == n
    bomb_png(tmp_path / "2.png")
    return records


@pytest.mark.parametrize("stage", ["locate", "examine"])
def test_grpo_rows_swap_an_unreadable_image_for_a_whole_spare_row(tmp_path, bomb_png, caplog, stage):
    records = _records_then_break(tmp_path, bomb_png)
    ds = grpo_dataset(records, stage, ProtocolConfig())
    with caplog.at_level(logging.WARNING, logger="zoomin.formats"):
        batch = ds[0:4]                        # a batch holding the bad row
        again = ds[[1, 1]]                     # a GRPO group of the bad row: both become the spare
    assert batch["id"] == ["1", "1", "3", "4"]  # row 2 replaced by the spare (record 1), in every column
    assert batch["label"][1] == batch["label"][0] == "fake" and batch["boxes"][1] == batch["boxes"][0]
    assert batch["prompt"][1] == batch["prompt"][0]
    assert np.array_equal(np.asarray(batch["images"][1][0]), np.asarray(batch["images"][0][0]))
    assert len(batch["images"][1]) == len(batch["images"][0]) == (2 if stage == "examine" else 1)
    assert again["id"] == ["1", "1"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "record 2" in warned[0] and "record 1 takes its place" in warned[0]


def test_sft_rows_swap_an_unreadable_image_for_a_whole_spare_row(tmp_path, bomb_png, caplog):
    records = _records_then_break(tmp_path, bomb_png)
    ds = sft_dataset(records, ProtocolConfig(), locate_repeats=3)
    assert len(ds) == 4 * len(records)          # per record: the locate example three times, then examine
    with caplog.at_level(logging.WARNING, logger="zoomin.formats"):
        first, bad = ds[0:4], ds[4:8]           # record 1 (readable), record 2 (its image broke after loading)
    locate, examine = first["completion"][:3], first["completion"][3]
    assert locate == [locate[0]] * 3 and "<boxes>" in locate[0][0]["content"][0]["text"]
    assert "<boxes>" not in examine[0]["content"][0]["text"]
    assert [len(images) for images in first["images"]] == [1, 1, 1, 2]  # examine: the original and its crop
    assert bad["id"] == ["1"] * 4               # every row of record 2 is the spare (record 1's locate row)
    assert bad["completion"] == [locate[0]] * 4 and bad["prompt"] == [first["prompt"][0]] * 4
    assert np.array_equal(np.asarray(bad["images"][3][0]), np.asarray(first["images"][0][0]))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "record 2" in warned[0] and "record 1 takes its place" in warned[0]
    with pytest.raises(ValueError, match="locate_repeats"):
        sft_rows(records, ProtocolConfig(), locate_repeats=0)


def test_warmup_serves_the_next_readable_record_with_its_own_targets(tiny_vlm, tmp_path, bomb_png, caplog):
    records = _records_then_break(tmp_path, bomb_png)
    maps = ArtifactMaps(records, AutoProcessor.from_pretrained(tiny_vlm()).image_processor)
    with caplog.at_level(logging.WARNING, logger="rl.warmup"):
        item, reference = maps[1], maps[2]      # record 2 is unreadable: record 3 takes its place
    assert torch_equal(item, reference) and item["labels"].item() == 1.0  # record 3 is fake, like its label says
    assert list(maps.unreadable) == [1] and "record 2" in caplog.text
    for name in ("1.png", "3.png", "4.png"):
        bomb_png(tmp_path / name)
    with pytest.raises(ImageProblem, match="none of the 4 records"):
        maps[0]


def torch_equal(a: dict, b: dict) -> bool:
    return all(bool((a[k] == b[k]).all()) for k in a)


class _Echo:
    """A detector stand-in that says "fake" to every image it is given (evaluate's plumbing is under test)."""

    protocol = ProtocolConfig()

    def locate_only(self, images, batch_size=8):
        from zoomin.detector import Located

        return [Located("fake", [], "", None, [], True, im.size) for im in images]

    def examine(self, images, located, regions=None):
        from zoomin.detector import Detection

        return [Detection("fake", 0.9, "fake", [], "", "", None, "x", [], [], im.size, True, True) for im in images]


def test_evaluate_skips_an_unreadable_record_and_scores_the_rest(tmp_path, bomb_png):
    records = _records_then_break(tmp_path, bomb_png)
    result = evaluate(_Echo(), records, batch_size=3, robustness=True, progress=False)
    assert [s["id"] for s in result["skipped"]] == ["2", "2", "2"]
    assert {s["condition"] for s in result["skipped"]} == {"clean", "jpeg_q50", "downscale_0.5"}
    assert [p["id"] for p in result["predictions"]] == ["1", "3", "4"]
    assert all(m["n"] == 3 for m in result["metrics"].values())


@pytest.fixture(scope="module")
def checkpoint(tiny_vlm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    shutil.copytree(tiny_vlm("qwen2_5_vl"), folder)
    codec = BoxCodec.from_processor("qwen2_5_vl", AutoProcessor.from_pretrained(folder))
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 6}, "examine": {"max_new_tokens": 6}}
                   ).save(folder)
    return folder


def test_detect_goes_on_past_a_bomb_and_exits_non_zero(checkpoint, tmp_path, bomb_png, capsys):
    good0, good1 = _good(tmp_path / "g0.png"), _good(tmp_path / "g1.png", (80, 60))
    bomb = bomb_png(tmp_path / "bomb.png")
    code = main(["detect", str(good0), str(bomb), str(good1), "--checkpoint", str(checkpoint), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["image"] for line in out.splitlines()] == [str(good0), str(good1)]
    assert err.startswith(f"zoomin detect: {bomb}: error: image refused as a possible decompression bomb")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_eval_cli_reports_an_image_that_stopped_decoding(checkpoint, tmp_path, bomb_png, capsys, monkeypatch):
    records = _records_then_break(tmp_path, bomb_png)
    (tmp_path / "2.png").write_bytes((tmp_path / "1.png").read_bytes())  # readable while loading ...
    real_load = load_records

    def load_then_break(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        bomb_png(tmp_path / "2.png")  # ... and a bomb by the time it is evaluated
        return loaded

    monkeypatch.setattr("zoomin.data.load_records", load_then_break)
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "d.jsonl"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped in clean: 2: image refused as a possible decompression bomb" in err
    result = json.loads(out.read_text())
    assert result["metrics"]["clean"]["n"] == len(records) - 1 and result["skipped"][0]["id"] == "2"
