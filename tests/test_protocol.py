"""The two-query protocol: rendering, parsing (which never raises), config round trips."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from zoomin.codecs import BoxCodec
from zoomin.protocol import CropPolicy, ProtocolConfig
from zoomin.zoom import zoom_in

P = ProtocolConfig()


def test_rendered_targets_parse_back_strictly():
    text = P.render_locate("Region 1: smeared texture.", [[10, 20, 30, 40], [1, 2, 3, 4]], "fake")
    parsed = P.parse(text, "locate")
    assert parsed.strict and parsed.problems == []
    assert parsed.boxes == [[10, 20, 30, 40], [1, 2, 3, 4]]
    assert parsed.verdict == "fake" and parsed.think == "Region 1: smeared texture."
    examine = P.parse(P.render_examine("Region 1 is fine.", "real"), "examine")
    assert examine.strict and examine.verdict == "real"


def test_empty_box_list_is_valid_for_real_images():
    parsed = P.parse(P.render_locate("clean", [], "real"), "locate")
    assert parsed.strict and parsed.boxes == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "missing <think>"),
        ("<think>a</think><boxes>[[1,2,3]]</boxes><verdict>fake</verdict>", "boxes are not a list"),
        ("<think>a</think><boxes>[[1,2,3,4]]</boxes><verdict>maybe</verdict>", "unknown verdict"),
        ("<think>a<think>b</think></think><boxes>[]</boxes><verdict>fake</verdict>", "more than once"),
        ("<think>a</think><boxes>[[1,2,3,4]]<verdict>fake</verdict>", "unclosed"),
        ("<think> </think><boxes>[]</boxes><verdict>real</verdict>", "empty <think>"),
        ("<think>a</think><boxes>[[١,2,3,4]]</boxes><verdict>fake</verdict>", "boxes are not a list"),
        ("<think>a</think><boxes>[[" + "9" * 400 + ",2,3,4]]</boxes><verdict>fake</verdict>", "boxes are not a list"),
        ("hello <think>a</think><boxes>[]</boxes><verdict>real</verdict>", "outside the tags"),
        ("<verdict>real</verdict><think>a</think><boxes>[]</boxes>", "out of order"),
    ],
)
def test_malformed_answers_report_a_problem(text, problem):
    parsed = P.parse(text, "locate")
    assert not parsed.strict
    assert any(problem in p for p in parsed.problems), parsed.problems


def test_boxes_tag_in_examine_answer_is_a_problem():
    parsed = P.parse("<think>a</think><boxes>[]</boxes><verdict>real</verdict>", "examine")
    assert not parsed.strict and any("does not belong" in p for p in parsed.problems)


def test_verdict_aliases():
    assert P.parse("<think>a</think><verdict> AI-Generated </verdict>", "examine").verdict == "fake"
    assert P.parse("<think>a</think><verdict>Authentic</verdict>", "examine").verdict == "real"


def test_box_count_is_capped():
    boxes = ",".join(["[1,2,3,4]"] * 5000)
    parsed = P.parse(f"<think>a</think><boxes>[{boxes}]</boxes><verdict>fake</verdict>", "locate")
    assert len(parsed.boxes) == P.max_boxes and not parsed.strict


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=300), st.from_regex(r"(<(/)?(think|boxes|verdict)>|\[|\]|,|-?\d{1,9}|real|fake| )*")))
def test_parse_never_raises(text):
    for stage in ("locate", "examine"):
        parsed = P.parse(text, stage)
        assert isinstance(parsed.problems, list)
        assert parsed.strict == (not parsed.problems)


def test_parse_of_non_text():
    assert P.parse(None, "locate").problems == ["answer is NoneType, not text"]


def test_cited_regions_follow_the_region_format():
    assert P.cited_regions("Region 1 and region 3 show it; Regions are fine; Region 12.") == {1, 3, 12}
    assert P.cited_regions(None) == set()
    crops = ProtocolConfig(region_format="Zoomed crop {i} at {box}")
    assert crops.cited_regions("zoomed  crop 2 is smeared, Region 1 is not") == {2}
    with pytest.raises(ValueError, match="region_format"):
        ProtocolConfig(region_format="Region: {box}")


def test_fast_and_general_parsers_agree():
    texts = [P.render_locate("a", [[1, 2, 3, 4]], "fake"), P.render_locate("a < b", [[1, 2, 3, 4]], "real"),
             "<think>a</think><boxes>[[01,2,3,4]]</boxes><verdict>fake</verdict>",
             "<think>a</think><boxes>[]</boxes><verdict>nope</verdict>", " <think>x</think>\n<boxes>[ ]</boxes>"]
    for text in texts:
        fast = P._parse_well_formed(text, "locate")
        if fast is not None:
            assert fast == P._parse_any(text, "locate")
    # The fast path takes multi-line reasoning and only answers whose every "<" is one of the stage's tags.
    examine = ["<think>line one\nline two</think>\n<verdict>Fake</verdict>\n", "<think>a</think><verdict>real</verdict>x",
               "<think>a<b</think><verdict>real</verdict>", "<think>a</think><boxes>[]</boxes><verdict>real</verdict>"]
    fast = [P._parse_well_formed(t, "examine") for t in examine]
    assert fast[0] == P._parse_any(examine[0], "examine") and fast[0].strict and fast[0].think == "line one\nline two"
    assert fast[1:] == [None, None, None]
    assert P.parse(examine[2], "examine").strict and not P.parse(examine[3], "examine").strict


def test_examine_messages_introduce_each_region():
    msgs = P.examine_messages([[1, 2, 3, 4], [5, 6, 7, 8]])
    content = msgs[0]["content"]
    assert [c["type"] for c in content] == ["image", "text", "image", "text", "image", "text"]
    assert content[1]["text"] == "Region 1: [1,2,3,4]" and content[3]["text"] == "Region 2: [5,6,7,8]"


def test_prompts_name_the_coordinate_convention():
    assert "pixel" in P.locate_messages()[0]["content"][1]["text"]
    grid = ProtocolConfig(codec=BoxCodec("qwen3_vl"))
    assert "0-1000" in grid.locate_messages()[0]["content"][1]["text"]


def test_config_json_round_trip_and_unknown_keys():
    cfg = ProtocolConfig(codec=BoxCodec("qwen2_vl"), crop=CropPolicy(pad_ratio=0.3), fake_word="synthetic",
                         fake_aliases=["generated"], system_prompt="be careful")
    again = ProtocolConfig.from_json(cfg.to_json())
    assert again == cfg and again.codec.family == "qwen2_vl" and again.crop.pad_ratio == 0.3
    bad = json.loads(cfg.to_json()) | {"colour": "red"}
    with pytest.raises(ValueError, match="unknown protocol keys \\['colour'\\]"):
        ProtocolConfig.from_dict(bad)
    with pytest.raises(ValueError, match="schema_version"):
        ProtocolConfig.from_dict({"schema_version": 99})


def test_custom_tags_and_words():
    cfg = ProtocolConfig(think_tag="reason", verdict_tag="answer", real_word="authentic", real_aliases=[])
    text = cfg.render_examine("fine", "real")
    assert text == "<reason>fine</reason>\n<answer>authentic</answer>"
    assert cfg.parse(text, "examine").verdict == "real"
    with pytest.raises(ValueError, match="distinct"):
        ProtocolConfig(think_tag="boxes")


def test_zoom_crops_follow_the_policy():
    image = Image.new("RGB", (200, 100))
    policy = ProtocolConfig(crop=CropPolicy(max_crops=2, resize_longest=64))
    zoomed = zoom_in(image, [[10, 10, 30, 20], [0, 0, 200, 100], [5, 5, 6, 6]], policy)
    crops = list(zip(zoomed.crop_windows, zoomed.crops))
    assert len(crops) == 2
    window, crop = crops[0]
    assert max(crop.size) == 64 and window[0] <= 10 and window[2] >= 30
