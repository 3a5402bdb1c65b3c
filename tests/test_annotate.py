"""`zoomin data annotate`: prompts, filters, decoding, faults and resume, through real HTTP.

The endpoints are tests/chat_server.py: a chat-completions server on 127.0.0.1 started here, whose
scripted explainer and grounder answer per record (good, disagreeing, ungroundable, malformed,
oversized boxes) and inject faults (429 with Retry-After, 500, a response stalled past the client
timeout). The pipeline talks to it through the real ``openai`` client, retries and timeouts included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_server import CUES, REGIONS, SCENARIOS, ChatServer, ForensicScript, make_image

from rl.cli import main
from zoomin.annotate import Endpoint, Settings, annotate, grounder_codec
from zoomin.annotate.filters import Rejected, VerdictReader, agreed_boxes, match_cue, place
from zoomin.annotate.output import Output, OutputError
from zoomin.annotate.prompts import GroundedBox, find_json, parse_explanation, parse_grounding
from zoomin.annotate.sources import SourceError, kept_size, prepare_image, read_source
from zoomin.data import load_records

REPO = Path(__file__).resolve().parents[1]


# ---- reading answers -----------------------------------------------------------------------------


def test_explanations_are_read_from_json_fences_and_prose():
    body = '{"explanation": "The hands have six fingers. The image is fake.", "cues": ["the left hand", "the left hand "]}'
    for text in (body, f"```json\n{body}\n```", f"Here you go:\n{body}\nAnything else?", f"```\n{body}```"):
        explanation, problem = parse_explanation(text, max_cues=4)
        assert problem is None and explanation.cues == ["the left hand"], text
        assert explanation.text.endswith("The image is fake.")


@pytest.mark.parametrize(("text", "fragment"), [
    ("I cannot help with that.", "no JSON object"),
    ('{"explanation": "fake", "cues": ["the sky"', "no JSON object"),
    ('{"explanation": "", "cues": ["the sky"]}', "non-empty string"),
    ('{"explanation": "fake", "cues": "the sky"}', "list of strings"),
    ('{"explanation": "fake", "cues": [" "]}', "names no cue"),
    ('{"explanation": "fake", "cues": ["a", "b", "c"]}', "more than the 2"),
])
def test_unusable_explanations_say_why(text, fragment):
    explanation, problem = parse_explanation(text, max_cues=2)
    assert explanation is None and fragment in problem


def test_grounding_answers_in_their_usual_shapes():
    native = '[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, {"bbox_2d": [50, 60, 5, 6], "label": "b"}]'
    for text in (native, f"```json\n{native}\n```", f'{{"regions": {native}}}', f"The boxes: {native}."):
        boxes, unusable, problem = parse_grounding(text)
        assert problem is None and unusable == 0
        assert boxes == [GroundedBox((10.0, 20.0, 30.0, 40.0), "a"), GroundedBox((5.0, 6.0, 50.0, 60.0), "b")]
    boxes, unusable, _ = parse_grounding('{"bbox_2d": [1, 2, 3, 4], "label": "x"}')
    assert len(boxes) == 1
    boxes, unusable, _ = parse_grounding(
        '[{"bbox_2d": [1, 2, 3], "label": "x"}, {"bbox_2d": [1, 2, 3, 1e999], "label": "y"}, '
        '{"bbox_2d": [1, 2, 3, ' + "9" * 400 + '], "label": "z"}, {"bbox_2d": [1, 2, 3, 4], "label": "w"}]')
    assert [b.label for b in boxes] == ["w"] and unusable == 3
    assert parse_grounding("no boxes here")[2].startswith("no JSON list")
    assert find_json("[1, 2] and then [3]", lambda v: v == [3]) == [3]


# ---- filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "verdict"), [
    ("The lighting is consistent. The image is real.", "real"),
    ("The image is fake.", "fake"),
    ("No region shows signs of being AI-generated; the image is real.", "real"),
    ("The shadows look natural, but the hands are AI-generated.", "fake"),
    ("It is not a real photograph.", "fake"),
    ("This picture isn't fake.", "real"),
    ("The textures are synthetic rather than real.", "fake"),
    ("The image is authentic rather than generated.", "real"),
    ("Real-world objects look unnatural and unreal here.", None),
    ("Look at the hands.", None),
])
def test_the_verdict_an_explanation_implies(text, verdict):
    assert VerdictReader()(text) == verdict


def test_grounding_labels_find_their_cues():
    cues = ["the six-fingered left hand", "the melted clock face", "the sky"]
    assert match_cue("The six-fingered left hand.", cues) == 0
    assert match_cue("2", cues) == 1 and match_cue("cue 3", cues) == 2
    assert match_cue("melted clock", cues) == 1
    assert match_cue("the six fingered left hnd", cues) == 0
    assert match_cue("a dog", cues) is None and match_cue("", cues) is None


def test_oversized_boxes_are_dropped_and_every_cue_needs_an_overlapping_box():
    codec = grounder_codec("qwen2_5_vl")
    size = (280, 280)  # kept as it is by the processor: the frame is the image itself
    cues = ["a", "b"]
    run1 = place([GroundedBox((0, 0, 100, 100), "a"), GroundedBox((0, 0, 280, 200), "a"),
                  GroundedBox((150, 150, 250, 250), "b")], cues, size, codec, 0.5)
    assert run1.boxes == [[[0, 0, 100, 100]], [[150, 150, 250, 250]]] and run1.oversized == [1, 0]
    run2 = place([GroundedBox((5, 5, 105, 105), "a"), GroundedBox((150, 150, 250, 250), "b")], cues, size, codec, 0.5)
    assert agreed_boxes([run1, run2], cues, 0.5) == ([[0, 0, 100, 100], [150, 150, 250, 250]], ["a", "b"])

    far = place([GroundedBox((180, 0, 280, 100), "a"), GroundedBox((150, 150, 250, 250), "b")], cues, size, codec, 0.5)
    with pytest.raises(Rejected, match=r"cue 1 \('a'\): the two grounding runs do not overlap \(best IoU 0.00"):
        agreed_boxes([run1, far], cues, 0.5)
    only_big = place([GroundedBox((0, 0, 280, 280), "a"), GroundedBox((0, 0, 10, 10), "zebra")], cues, size, codec, 0.5)
    with pytest.raises(Rejected, match="got no box in grounding run 2 .*dropped.*'zebra'") as info:
        agreed_boxes([run1, only_big], cues, 0.5)
    assert info.value.stage == "ground"


# ---- the image as sent, and boxes back in original pixels ----------------------------------------------


@pytest.mark.parametrize("size", [(40, 30), (333, 250), (150, 100), (600, 400), (250, 600), (1000, 37)])
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl", "qwen3_vl"])
def test_boxes_decode_from_the_frame_of_the_image_as_sent(tmp_path, size, family):
    """The grounder answers about the image it received; decoding must map that back to the original."""
    codec = grounder_codec(family, min_pixels=3136, max_pixels=40_000)
    path = make_image(tmp_path / "x.png", "good", 0, size)
    sent = prepare_image(path, codec)
    factor = codec.patch_size * codec.merge_size
    assert sent.original_size == size and sent.sent_size == kept_size(size, codec)
    assert sent.sent_size[0] % factor == 0 and sent.sent_size[1] % factor == 0
    assert kept_size(sent.sent_size, codec) == sent.sent_size  # the processor keeps what it is sent
    fw, fh = (1000, 1000) if family != "qwen2_5_vl" else sent.sent_size
    for x1, y1, x2, y2 in REGIONS:
        coords = (round(x1 * fw), round(y1 * fh), round(x2 * fw), round(y2 * fh))
        decoded = codec.decode(coords, sent.original_size)
        truth = (x1 * size[0], y1 * size[1], x2 * size[0], y2 * size[1])
        tolerance = (0.5 * size[0] / fw + 0.01, 0.5 * size[1] / fh + 0.01)
        assert all(abs(d - t) <= tolerance[i % 2] for i, (d, t) in enumerate(zip(decoded, truth))), (decoded, truth)


# ---- sources ------------------------------------------------------------------------------------------


def test_sources_from_a_folder_a_json_list_and_jsonl(tmp_path):
    make_image(tmp_path / "set" / "real" / "a.png", "good", 0)
    make_image(tmp_path / "set" / "fake" / "sdxl" / "b.png", "good", 1)
    make_image(tmp_path / "set" / "fake" / "c.png", "good", 2)
    (tmp_path / "set" / "fake" / "notes.txt").write_text("not an image")
    items = read_source(tmp_path / "set", source_name="mine")
    assert [(i.id, i.label, i.generator, i.source) for i in items] == [
        ("real/a.png", "real", None, "mine"), ("fake/c.png", "fake", None, "mine"),
        ("fake/sdxl/b.png", "fake", "sdxl", "mine")]

    rows = [{"id": 1, "image": "set/real/a.png", "label": "Authentic", "source": "coco"},
            {"id": "x", "image": "set/fake/c.png", "label": "AI-generated"},
            {"id": "y", "image": "set/fake/c.png", "label": "maybe"}, {"id": "z", "label": "fake"}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    items = read_source(tmp_path / "list.json", source_name="mine")
    assert [(i.id, i.label, i.source) for i in items[:2]] == [("1", "real", "coco"), ("x", "fake", "mine")]
    assert "unknown label 'maybe'" in items[2].problem and "field 'image'" in items[3].problem
    assert items[0].image == (tmp_path / "set" / "real" / "a.png").resolve()


@pytest.mark.parametrize(("lines", "fragment"), [
    (['{"id": "a", "image": "x.png", "label": "real"}', '{"id": "a", "image": "y.png", "label": "fake"}'],
     "src.jsonl:2: id 'a' is used again (first at src.jsonl:1)"),
    (['{"image": "x.png", "label": "real"}'], "src.jsonl:1: record without a usable 'id'"),
    (['{"id": "a", "image": "x.png", "label": "real"}', "{not json"], "src.jsonl:2: not valid JSON"),
])
def test_ambiguous_sources_stop_before_any_request(tmp_path, lines, fragment):
    (tmp_path / "src.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_source(tmp_path / "src.jsonl")


# ---- the pipeline against the scripted server ----------------------------------------------------------


def _source(folder: Path, scenarios, sizes=((120, 90),)) -> tuple[Path, dict[str, dict]]:
    """A JSONL source with one record per (scenario, size); returns it and its rows by id."""
    rows = {}
    for i, scenario in enumerate(scenarios):
        for j, size in enumerate(sizes):
            rid = f"{scenario}-{j}"
            make_image(folder / "images" / f"{rid}.png", scenario, i * len(sizes) + j, size)
            rows[rid] = {"id": rid, "image": f"images/{rid}.png", "label": "fake" if (i + j) % 2 else "real",
                         "size": size}
    path = folder / "src.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    return path, rows


def _settings(server: ChatServer, **overrides) -> Settings:
    values = {"explainer": Endpoint("explainer", server.url, "m"), "grounder": Endpoint("grounder", server.url, "m"),
              "timeout": 1.0, "max_retries": 2, "concurrency": 4, **overrides}
    return Settings(**values)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_exactly_once(out: Path, ids) -> tuple[dict, dict]:
    """Every id in exactly one line of data.jsonl + rejected.jsonl; returns both by id."""
    data, rejected = _lines(out / "data.jsonl"), _lines(out / "rejected.jsonl")
    written = [r["id"] for r in data] + [r["id"] for r in rejected]
    assert sorted(written) == sorted(ids), "every input id must end in exactly one line"
    return {r["id"]: r for r in data}, {r["id"]: r for r in rejected}


EXPECTED = {
    "good": None, "fenced": None, "partly_oversized": None, "chatty_grounder": None, "rate_limited": None,
    "flaky": None, "stall_once": None,
    "disagree": ("verdict", "the two explanations disagree"),
    "wrong_label": ("verdict", "but the image is labelled"),
    "no_verdict": ("verdict", "explanation 1 states no verdict"),
    "malformed": ("explain", "no JSON object"),
    "ungroundable": ("ground", "cue 2 ('the smeared texture at the bottom right') got no box in grounding run 1"),
    "oversized": ("ground", "covering over the allowed share of the image were dropped"),
    "no_overlap": ("overlap", "the two grounding runs do not overlap"),
    "broken": ("request", "HTTP 500 InternalServerError: the model crashed (after 2 retries)"),
    "stall_always": ("request", "no answer within the 1 s timeout (after 2 retries)"),
}


def test_every_scenario_ends_in_exactly_one_file_with_its_reason(tmp_path):
    assert set(EXPECTED) == set(SCENARIOS)
    src, rows = _source(tmp_path / "src", SCENARIOS)
    with open(src, "a") as f:  # records the pipeline rejects before any request
        (tmp_path / "src" / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        f.write(json.dumps({"id": "corrupt", "image": "images/corrupt.png", "label": "fake"}) + "\n")
        f.write(json.dumps({"id": "missing", "image": "images/none.png", "label": "real"}) + "\n")
        f.write(json.dumps({"id": "unlabelled", "image": "images/good-0.png", "label": "?"}) + "\n")
    out = tmp_path / "out"
    script = ForensicScript(stall=3.0)
    with ChatServer(script) as server:
        summary = annotate(src, out, _settings(server), progress=False)
    ids = [*rows, "corrupt", "missing", "unlabelled"]
    data, rejected = _check_exactly_once(out, ids)

    for rid, row in rows.items():
        expected = EXPECTED[rid.rsplit("-", 1)[0]]
        if expected is None:
            assert rid in data, rejected.get(rid)
            w, h = row["size"]
            record = data[rid]
            assert len(record["boxes"]) == 2 and record["region_notes"] == CUES and record["label"] == row["label"]
            for box, (x1, y1, x2, y2) in zip(record["boxes"], REGIONS):  # either sample may be run 1
                assert box == pytest.approx([x1 * w, y1 * h, x2 * w, y2 * h], abs=0.02 * w + 0.6)
            assert record["explanation"].endswith(f"The image is {row['label']}.")
            assert record["image"].startswith("images/")  # the source lies outside out/: a copy
        else:
            stage, fragment = expected
            assert rid in rejected
            got = rejected[rid]
            assert got["stage"] == stage and fragment in (got["reason"] + " " + str(got["error"])), got
    assert rejected["corrupt"]["stage"] == "image" and "cannot be decoded" in rejected["corrupt"]["reason"]
    assert rejected["missing"]["stage"] == "image" and "not found" in rejected["missing"]["reason"]
    assert rejected["unlabelled"]["stage"] == "input" and "unknown label" in rejected["unlabelled"]["reason"]

    n_done = sum(v is None for v in EXPECTED.values())
    assert summary.counts["done"] == n_done and summary.counts["failed"] == 2
    assert summary.counts["rejected"] == len(EXPECTED) - n_done - 2 + 3
    assert server.statuses[429] == 1 and server.statuses[500] >= 1 + 2 * 3
    broken = [c for c in server.calls if c.kind == "explain" and c.image is not None
              and c.image.getpixel((0, 0))[0] == 8 * SCENARIOS.index("broken") + 4]
    assert len(broken) == 2 * 3, "two explanations, each tried once and retried twice"
    for role, kind in (("explainer", "explain"), ("grounder", "ground")):
        assert summary.tokens[role] == {"requests": server.answered[kind], "prompt_tokens": 100 * server.answered[kind],
                                        "completion_tokens": 10 * server.answered[kind]}
    assert summary.structured == {"explainer": "used", "grounder": "used"}
    assert all(c.structured for c in server.calls if c.kind != "other")

    records, report = load_records(out / "data.jsonl")
    assert report.n_good == report.n_records == n_done and not report.findings
    run = json.loads((out / "run.json").read_text())
    assert run["last_run"]["counts"]["done"] == n_done and run["settings"]["min_iou"] == 0.5


def test_images_outside_the_folder_are_copied_and_inside_it_referenced(tmp_path):
    src, rows = _source(tmp_path / "data", ["good"], sizes=[(64, 48), (70, 50)])
    with ChatServer(ForensicScript()) as server:
        annotate(src, tmp_path / "data", _settings(server), progress=False)  # out = the source folder
        annotate(src, tmp_path / "elsewhere", _settings(server), progress=False)
    inside = {r["id"]: r["image"] for r in _lines(tmp_path / "data" / "data.jsonl")}
    assert inside == {rid: row["image"] for rid, row in rows.items()}
    copied = _lines(tmp_path / "elsewhere" / "data.jsonl")
    assert all(r["image"].startswith("images/good-") for r in copied)
    for r in copied:
        source = tmp_path / "data" / rows[r["id"]]["image"]
        assert (tmp_path / "elsewhere" / r["image"]).read_bytes() == source.read_bytes()
    assert load_records(tmp_path / "elsewhere" / "data.jsonl")[1].n_good == 2


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_boxes_land_in_original_pixels_on_resized_images(tmp_path, family):
    """Upscaled (min_pixels), rounded and downscaled (max_pixels) images, pixel and grid grounders."""
    sizes = [(40, 30), (150, 100), (333, 250), (600, 400), (250, 600)]
    src, rows = _source(tmp_path, ["good"], sizes=sizes)
    codec = grounder_codec(family, max_pixels=40_000)
    with ChatServer(ForensicScript(grid=family != "qwen2_5_vl")) as server:
        annotate(src, tmp_path / "out", _settings(server, codec=codec), progress=False)
    received = {c.image.size for c in server.calls if c.kind == "ground"}
    assert received == {kept_size(s, codec) for s in sizes}
    data, _ = _check_exactly_once(tmp_path / "out", rows)
    for rid, row in rows.items():
        w, h = row["size"]
        fw, fh = (1000, 1000) if family != "qwen2_5_vl" else kept_size((w, h), codec)
        for box, (x1, y1, x2, y2) in zip(data[rid]["boxes"], REGIONS):
            truth = [x1 * w, y1 * h, x2 * w, y2 * h]
            jittered = [(x1 + 0.02) * w, (y1 + 0.01) * h, (x2 + 0.02) * w, (y2 + 0.01) * h]  # the other sample
            tolerance = 0.5 * max(w / fw, h / fh) + 0.02
            assert box == pytest.approx(truth, abs=tolerance) or box == pytest.approx(jittered, abs=tolerance)


def test_an_endpoint_without_structured_output_is_read_as_plain_text(tmp_path):
    src, rows = _source(tmp_path, ["good", "fenced", "chatty_grounder", "disagree"])
    with ChatServer(ForensicScript(), structured=False) as server:
        summary = annotate(src, tmp_path / "out", _settings(server, concurrency=1), progress=False)
    data, rejected = _check_exactly_once(tmp_path / "out", rows)
    assert set(data) == {"good-0", "fenced-0", "chatty_grounder-0"} and rejected["disagree-0"]["stage"] == "verdict"
    # the first record's two requests per role go out together and are both refused; then plain only
    assert server.statuses[400] == 4
    for kind in ("explain", "ground"):
        structured = [c.structured for c in server.calls if c.kind == kind]
        assert structured.count(True) == 2 and not any(structured[4:]) and len(structured) > 4
    assert summary.structured["explainer"].startswith("refused: HTTP 400")


def test_a_second_explainer_model_is_asked_and_tallied_apart(tmp_path):
    src, rows = _source(tmp_path, ["good"], sizes=[(64, 48), (70, 50)])
    with ChatServer(ForensicScript(), models=("m", "m2")) as server:
        summary = annotate(src, tmp_path / "out", _settings(
            server, second_explainer=Endpoint("second explainer", server.url, "m2")), progress=False)
    assert {c.model for c in server.calls if c.kind == "explain"} == {"m", "m2"}
    assert summary.tokens["explainer"]["requests"] == summary.tokens["second explainer"]["requests"] == 2


# ---- resume ------------------------------------------------------------------------------------------


def test_a_line_cut_in_half_is_redone_and_nothing_is_written_twice(tmp_path):
    src, rows = _source(tmp_path, ["good", "fenced", "disagree", "ungroundable", "flaky"])
    out = tmp_path / "out"
    with ChatServer(ForensicScript()) as server:
        annotate(src, out, _settings(server), progress=False)
        before = _check_exactly_once(out, rows)
        for name in ("data.jsonl", "rejected.jsonl"):  # a kill in the middle of the last write of each
            text = (out / name).read_bytes()
            last = text[:-1].rfind(b"\n") + 1
            (out / name).write_bytes(text[: last + (len(text) - last) // 2])
        n_calls = len(server.calls)
        summary = annotate(src, out, _settings(server), progress=False)
        again = len({c.key.split(":")[1] for c in server.calls[n_calls:] if c.kind == "explain"})
        assert summary.counts["skipped"] == len(rows) - 2 and again == 2, "only the two cut records are redone"
        after = _check_exactly_once(out, rows)
        assert {k: set(v) for k, v in enumerate(after)} == {k: set(v) for k, v in enumerate(before)}
        n_calls = len(server.calls)
        assert annotate(src, out, _settings(server), progress=False).counts["skipped"] == len(rows)
        assert len(server.calls) == n_calls, "a finished folder sends nothing"


def test_failed_records_are_retried_only_when_asked(tmp_path):
    src, rows = _source(tmp_path, ["good", "broken", "disagree"])
    out = tmp_path / "out"
    script = ForensicScript()
    with ChatServer(script) as server:
        first = annotate(src, out, _settings(server, max_retries=0), progress=False)
        assert first.counts["failed"] == 1
        script.heal.add("broken")  # the endpoint is back
        assert annotate(src, out, _settings(server), progress=False).counts["done"] == 0
        again = annotate(src, out, _settings(server), retry_failed=True, progress=False)
    assert again.counts["done"] == 1 and again.counts["skipped"] == 2
    data, rejected = _check_exactly_once(out, rows)
    assert set(data) == {"good-0", "broken-0"} and set(rejected) == {"disagree-0"}


def test_limit_takes_the_next_records_and_changed_settings_are_pointed_out(tmp_path, capsys):
    src, rows = _source(tmp_path, ["good"], sizes=[(64, 48), (70, 50), (80, 60)])
    out = tmp_path / "out"
    with ChatServer(ForensicScript()) as server:
        assert annotate(src, out, _settings(server), limit=2, progress=False).counts["done"] == 2
        assert "other settings" not in capsys.readouterr().err
        rest = annotate(src, out, _settings(server, min_iou=0.4), limit=2, progress=False)
    assert rest.counts["done"] == 1 and rest.counts["skipped"] == 2
    assert "was written with other settings (min_iou: 0.5 -> 0.4)" in capsys.readouterr().err
    _check_exactly_once(out, rows)


def test_a_folder_with_foreign_lines_is_refused(tmp_path):
    (tmp_path / "data.jsonl").write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(OutputError, match=r"data.jsonl:2 is not a record"):
        Output(tmp_path).open()
    (tmp_path / "data.jsonl").write_text('{"id": "a"}\n')
    (tmp_path / "rejected.jsonl").write_text('{"id": "a", "stage": "verdict"}\n')
    with pytest.raises(OutputError, match="id 'a' is already recorded at data.jsonl:1"):
        Output(tmp_path).open()


# ---- command line ------------------------------------------------------------------------------------


def _cli(src: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["data", "annotate", str(src), "--out", str(out), "--explainer-url", url, "--explainer-model", "m",
            "--timeout", "1", "--max-retries", "0", "--no-progress", *extra]


def test_cli_runs_with_the_key_from_the_environment_and_never_shows_it(tmp_path, capsys, monkeypatch):
    src, rows = _source(tmp_path, ["good", "disagree", "broken"])
    secret = "sk-test-3f9a1c7e5b"
    monkeypatch.setenv("ZOOMIN_TEST_KEY", secret)
    monkeypatch.setenv("ZOOMIN_GROUNDER_MODEL", "g")
    with ChatServer(ForensicScript(), models=("m", "g")) as server:
        code = main(_cli(src, tmp_path / "out", server.url, "--api-key-env", "ZOOMIN_TEST_KEY"))
    captured = capsys.readouterr()
    assert code == 1, "one record failed on endpoint errors"
    assert "1 written" in captured.out and "1 rejected, 1 failed" in captured.out
    assert {c.authorization for c in server.calls} == {f"Bearer {secret}"}
    assert {c.model for c in server.calls if c.kind == "ground"} == {"g"}
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir() if p.is_file())
    assert secret not in captured.out + captured.err + written


def test_cli_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZOOMIN_EXPLAINER_URL", raising=False)
    src, _ = _source(tmp_path, ["good"])
    with ChatServer(ForensicScript(), models=("other",)) as server:
        url = server.url
        cases = [
            (["data", "annotate", str(src), "--out", str(tmp_path / "o")], "--explainer-url"),
            (_cli(tmp_path / "nope.jsonl", tmp_path / "o", url), "no such file or folder"),
            (_cli(src, tmp_path / "o", url), "model 'm' is not served at"),
            (_cli(src, tmp_path / "o", url, "--min-iou", "1.5"), "min_iou"),
        ]
        for argv, fragment in cases:
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert "Traceback" not in err and len(err.splitlines()) == 1 and fragment in err, err
    with ChatServer(ForensicScript(), api_key="right") as server:
        monkeypatch.setenv("ZOOMIN_TEST_KEY", "wrong")
        assert main(_cli(src, tmp_path / "o", server.url, "--api-key-env", "ZOOMIN_TEST_KEY")) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refused the API key from $ZOOMIN_TEST_KEY" in err and "wrong" not in err
    # the first server is gone now: nothing listens on its port
    assert main(_cli(src, tmp_path / "o", url)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be reached" in err


# ---- SIGKILL at any moment, then rerun -------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_several_moments_then_rerun_loses_and_repeats_nothing(tmp_path):
    scenarios = ["good", "fenced", "disagree", "ungroundable", "no_overlap", "chatty_grounder"]
    src, rows = _source(tmp_path / "src", scenarios, sizes=[(64, 48), (70, 52), (90, 60), (48, 64)])
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def count() -> int:
        return sum(len(p.read_bytes().splitlines()) for p in (out / "data.jsonl", out / "rejected.jsonl")
                   if p.exists())

    with ChatServer(ForensicScript(), latency=0.05) as server:
        # generous timeouts and retries: a record that failed on a slow answer would look like a lost one
        argv = [sys.executable, "-m", "rl.cli",
                *_cli(src, out, server.url, "--concurrency", "4", "--timeout", "30", "--max-retries", "3")]
        kills = 0
        for wait_for_lines in (0, 1, 3, 5, 8):  # kill before any line, then after more and more lines
            start = count()
            proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while proc.poll() is None and count() < start + wait_for_lines and time.monotonic() < deadline:
                time.sleep(0.005)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
        assert kills >= 3
        final = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    data, rejected = _check_exactly_once(out, rows)
    # a record cut short between its two answers may be redone out of step with the script, so only the
    # always-good scenarios have a fixed outcome; exactly-once holds for all
    assert {rid for rid in rows if rid.rsplit("-", 1)[0] in ("good", "fenced", "chatty_grounder")} <= set(data)
    assert load_records(out / "data.jsonl")[1].n_good == len(data)


@pytest.mark.slow
def test_an_annotated_folder_validates_and_trains(tmp_path, tiny_vlm):
    """docs/data.md's path: a folder of real/ and fake/ images -> annotate -> validate -> sft."""
    for i in range(6):
        make_image(tmp_path / "photos" / ("fake/sdxl" if i % 2 else "real") / f"{i}.png", "good", i, (120 + 8 * i, 90))
    with ChatServer(ForensicScript()) as server:
        # a long timeout: the first images wait for transformers to import, which holds up this process's server
        assert main(_cli(tmp_path / "photos", tmp_path / "data", server.url, "--source", "mine", "--timeout", "60")) == 0
    records, report = load_records(tmp_path / "data" / "data.jsonl")
    assert report.n_good == 6 and {r.generator for r in records} == {None, "sdxl"}
    assert main(["data", "validate", str(tmp_path / "data" / "data.jsonl")]) == 0
    assert main(["sft", "--config", str(REPO / "recipes/tiny/sft.yaml"), "--model_name_or_path", str(tiny_vlm()),
                 "--train_data", str(tmp_path / "data" / "data.jsonl"), "--output_dir", str(tmp_path / "sft"),
                 "--max_steps", "1", "--freeze_vision", "false", "--save_strategy", "no", "--report_to", "none"]) == 0
    assert (tmp_path / "sft" / "zoomin.json").exists()
