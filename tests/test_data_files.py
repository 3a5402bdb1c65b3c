"""The data layer reads the file forms public datasets ship: JSON arrays, byte-order marks."""

from __future__ import annotations

import codecs
import json

import pytest
from PIL import Image

from rl.cli import main
from zoomin.data import DataError, load_records, read_json


def _rec(i, label="fake", boxes=((4, 4, 20, 20),)):
    return {"id": str(i), "image": "a.png", "label": label, "boxes": [list(b) for b in boxes],
            "explanation": "Region 1 shows smeared texture."}


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "a.png")
    return tmp_path


def test_jsonl_with_a_utf8_bom_keeps_its_first_record(folder):
    text = "".join(json.dumps(_rec(i)) + "\n" for i in (1, 2))
    (folder / "bom.jsonl").write_bytes(codecs.BOM_UTF8 + text.encode())
    records, report = load_records(folder / "bom.jsonl")
    assert [r.id for r in records] == ["1", "2"] and not report.findings


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_json_array_of_records(folder, encoding):
    rows = [_rec(1), _rec(2, label="Fake"), _rec(3, "real", ())]
    (folder / "data.json").write_text(json.dumps(rows, indent=2), encoding=encoding)
    records, report = load_records(folder / "data.json")
    assert [r.id for r in records] == ["1", "3"] and report.n_records == 3
    assert [(f.where, f.id) for f in report.findings] == [("data.json[1]", "2")]
    assert "unknown label 'Fake'" in report.findings[0].reason


def test_json_file_holding_jsonl_is_read_line_by_line(folder):
    (folder / "lines.json").write_text("".join(json.dumps(_rec(i)) + "\n" for i in (1, 2)))
    records, _ = load_records(folder / "lines.json")
    assert [r.id for r in records] == ["1", "2"]


def test_broken_json_array_names_the_file_line_and_column(folder, capsys):
    (folder / "broken.json").write_text('[\n  {"id": "1",\n  oops]\n')
    with pytest.raises(DataError, match=r"broken.json is not valid JSON: .* at line 3 column 3"):
        load_records(folder / "broken.json")
    assert main(["data", "validate", str(folder / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 3 column 3" in err


def test_read_json_reads_utf16_with_bom(tmp_path):
    (tmp_path / "x.json").write_text('[{"desc": "caf\u00e9"}]', encoding="utf-16")
    assert read_json(tmp_path / "x.json") == [{"desc": "caf\u00e9"}]


def test_a_dataset_dict_folder_names_its_splits(folder):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"id": "1"}]),
                               "test": datasets.Dataset.from_list([{"id": "2"}])})
    dd.save_to_disk(str(folder / "dd"))
    with pytest.raises(FileNotFoundError, match="holds the splits .*train.*pass one split's folder"):
        load_records(folder / "dd")
