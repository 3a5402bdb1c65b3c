"""Box codecs: round trips over many image sizes, and agreement with the real processor's resize."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import Qwen2VLImageProcessor

from zoomin.codecs import GRID, BoxCodec, decode_with_frame, encode_with_frame

SIZES = st.tuples(st.integers(16, 5000), st.integers(16, 5000))


def _box(size, fr):
    w, h = size
    (ax, bx), (ay, by) = sorted(fr[:2]), sorted(fr[2:])
    return [ax * w, ay * h, max(bx * w, ax * w + 1), max(by * h, ay * h + 1)]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl", "qwen3_vl"])
@settings(max_examples=400, deadline=None)
@given(size=SIZES, fr=st.tuples(*[st.floats(0, 1)] * 4))
def test_round_trip_error_is_below_one_model_unit(family, size, fr):
    assume(max(size) / min(size) < 200)  # Qwen processors refuse more extreme aspect ratios
    codec = BoxCodec(family, min_pixels=56 * 56, max_pixels=448 * 448)
    box = [min(v, lim) for v, lim in zip(_box(size, fr), [*size, *size])]
    back = codec.decode(codec.encode(box, size), size)
    fw, fh = codec.frame(size)
    unit_x, unit_y = size[0] / fw, size[1] / fh
    for got, want, unit in zip(back, box, [unit_x, unit_y, unit_x, unit_y]):
        assert abs(got - want) <= unit / 2 + 1e-6


@settings(max_examples=200, deadline=None)
@given(size=SIZES)
def test_qwen2_5_frame_is_what_the_processor_feeds_the_model(size):
    ip = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=224 * 224)
    codec = BoxCodec.from_processor("qwen2_5_vl", ip)
    w, h = size
    assume(max(w, h) / min(w, h) < 200)
    grid = ip(images=[Image.new("RGB", (min(w, 600), min(h, 600)))], return_tensors="pt")["image_grid_thw"][0]
    fw, fh = codec.frame((min(w, 600), min(h, 600)))
    assert (fh, fw) == (int(grid[1]) * ip.patch_size, int(grid[2]) * ip.patch_size)


def test_grid_families_use_0_to_1000():
    assert BoxCodec("qwen2_vl").frame((640, 480)) == (GRID, GRID)
    assert BoxCodec("qwen3_vl").encode([0, 0, 640, 480], (640, 480)) == [0, 0, 1000, 1000]
    assert BoxCodec("qwen3_vl").encode([320, 120, 480, 240], (640, 480)) == [500, 250, 750, 500]


def test_encode_clamps_to_frame_and_decode_scales_back():
    assert encode_with_frame([-5, -5, 700, 500], (640, 480), (320, 240)) == [0, 0, 320, 240]
    assert decode_with_frame([10, 20, 30, 40], (640, 480), (320, 240)) == [20, 40, 60, 80]


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="known families: qwen2_5_vl, qwen2_vl, qwen3_vl"):
        BoxCodec("llava")


def test_codec_serialises():
    codec = BoxCodec("qwen2_5_vl", patch_size=14, merge_size=2, min_pixels=100, max_pixels=20000)
    assert BoxCodec.from_dict(codec.to_dict()) == codec
