"""The tiny VLMs must behave like real Qwen-VL checkpoints wherever training and inference touch them."""

from __future__ import annotations

from importlib.resources import files

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from zoomin.tiny import FAMILIES, build_tiny_vlm

CLASSES = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
# TRL keeps the real templates for identity checks; Qwen2-VL ships the same one as Qwen2.5-VL.
REAL_TEMPLATES = {"qwen2_5_vl": "qwen2_5_vl.jinja", "qwen2_vl": "qwen2_5_vl.jinja", "qwen3_vl": "qwen3_vl.jinja"}
ANSWER = "<think>The smeared texture in the upper-left</think>\n<boxes>[[12,40,88,120]]</boxes>\n<verdict>fake</verdict>"


def _image() -> Image.Image:
    return Image.frombytes("RGB", (150, 100), torch.randint(0, 256, (100, 150, 3), dtype=torch.uint8).numpy())


def _chat(image: Image.Image | None = None) -> list[dict]:
    picture = {"type": "image", "image": image} if image is not None else {"type": "image"}
    return [
        {"role": "user", "content": [picture, {"type": "text", "text": "Locate the suspicious regions."}]},
        {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]},
    ]


def _load(path):
    return AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_reloads_as_the_real_class_with_consistent_ids(tiny_vlm, family):
    processor, model = _load(tiny_vlm(family))
    tok = processor.tokenizer
    assert type(model).__name__ == CLASSES[family]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.config.image_token_id == processor.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.text_config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")


@pytest.mark.parametrize("family", FAMILIES)
def test_small_has_a_few_million_parameters(tiny_vlm, family):
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm(family, "small"))
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 10_000_000


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_with_labels_and_generate(tiny_vlm, family):
    processor, model = _load(tiny_vlm(family))
    image = _image()
    text = processor.apply_chat_template(_chat(), tokenize=False)
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    image_tokens = (inputs["input_ids"] == processor.image_token_id).sum().item()
    assert image_tokens == inputs["image_grid_thw"].prod().item() // 4 <= 16  # tiny pixel budget
    loss = model(**inputs, labels=inputs["input_ids"].clone()).loss
    assert torch.isfinite(loss)
    loss.backward()

    prompt = processor.apply_chat_template(_chat()[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_assistant_mask_covers_exactly_the_answer(tiny_vlm, family):
    processor = AutoProcessor.from_pretrained(tiny_vlm(family))
    out = processor.apply_chat_template(
        [_chat(_image())], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    first = mask.index(1)
    assert all(mask[first:]) and not any(mask[:first])  # one span, running to the end
    assert processor.tokenizer.decode(ids[first:]) == ANSWER + "<|im_end|>\n"


@pytest.mark.parametrize("family", FAMILIES)
def test_template_renders_like_the_real_one(tiny_vlm, family):
    processor = AutoProcessor.from_pretrained(tiny_vlm(family))
    real = (files("trl") / "chat_templates" / REAL_TEMPLATES[family]).read_text()
    two_images = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Region 1: [3,5,60,70]"}, {"type": "image"}]},
    ]  # fmt: skip
    for chat, kwargs in [
        (_chat(), {}),
        (_chat()[:1], {"add_generation_prompt": True}),
        (two_images, {"add_generation_prompt": True, "add_vision_id": True}),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], {}),
    ]:
        ours = processor.apply_chat_template(chat, tokenize=False, **kwargs)
        assert ours == processor.apply_chat_template(chat, chat_template=real, tokenize=False, **kwargs)


def test_digits_are_one_token_each(tiny_vlm):
    tok = AutoProcessor.from_pretrained(tiny_vlm()).tokenizer
    pieces = tok.convert_ids_to_tokens(tok("[[12,40,880,1203]]")["input_ids"])
    assert [p for p in pieces if any(c.isdigit() for c in p)] == list("12408801203")


def test_same_seed_same_model_and_callers_rng_untouched(tiny_vlm, tmp_path):
    state = torch.get_rng_state()
    again = build_tiny_vlm("qwen2_5_vl", "tiny", tmp_path / "again")
    assert torch.equal(state, torch.get_rng_state())
    first, second = (load_file(p / "model.safetensors") for p in (tiny_vlm(), again))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (tiny_vlm() / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


@pytest.mark.parametrize(("family", "size"), [("llava", "tiny"), ("qwen2_5_vl", "huge")])
def test_unknown_family_or_size_raises(tmp_path, family, size):
    with pytest.raises(ValueError, match="expected one of"):
        build_tiny_vlm(family, size, tmp_path)
