"""Random-weight VLMs of the real Qwen-VL architectures, built entirely offline.

Tests and the CPU demo need a model that exercises exactly the code paths of the real checkpoints
(processor, chat template, mrope, window attention, deepstack, generation) without downloading
gigabytes. `build_tiny_vlm` writes a folder that `AutoProcessor` and
`AutoModelForImageTextToText` reload like a Hub checkpoint: a byte-level BPE tokenizer trained
here on task-like text, the family's image and video processors with small pixel bounds, a
ChatML template with `{% generation %}` markers, and a config of the real class with tiny sizes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    PreTrainedConfig,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from zoomin.quiet import no_progress_bars

FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
SIZES = ("tiny", "small")

# The Qwen special tokens, in the order (hence relative ids) of the real vocabularies.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
BPE_VOCAB_SIZE = 1024

_WORDS = (
    "checkerboard upsampling texture smeared inpainted patch warp warped banding colour color lighting",
    "natural region regions upper-left upper-right lower-left lower-right centre center real fake image",
    "photo photograph generated synthetic artifact artifacts grid pattern blur blurred edge edges sky",
    "face hand background foreground object shadow shadows noise sharp smooth gradient stripes seam seams",
    "geometry distorted lines straight curved repeated tile consistent inconsistent plausible unnatural",
    "camera sensor detail details fine coarse suspicious evidence zoom crop crops locate examine original",
    "explanation verdict boxes box the a an of in and or with is are looks shows no visible clear this",
    "that there these here at on near around left right top bottom middle corner area part whole small",
    "large strong weak because which where what why how see show cite cites appears seems",
    "system user assistant You are a helpful assistant. Picture Video",
)
_PROMPTS = (
    "Locate the regions that reveal whether this image is real or fake.",
    "Examine the original image and the zoomed crops, then give the final verdict.",
    "Answer with <think>...</think>, <boxes>[[x1,y1,x2,y2], ...]</boxes> and <verdict>real|fake</verdict>.",
    "system\n",
    "user\n",
    "assistant\n",
)
_EXPLANATIONS = (
    "The {a} in the {p} region looks {q}.",
    "Region {i} shows {a} that a camera would not produce.",
    "There is a {a} near the {p} corner, so the image is {v}.",
    "Lighting and texture look natural and consistent across the photo.",
)
_ARTIFACTS = (
    "checkerboard upsampling pattern",
    "smeared texture",
    "inpainted patch",
    "warped geometry",
    "colour banding",
    "repeated tile",
)
_PLACES = ("upper-left", "upper-right", "lower-left", "lower-right", "centre", "left", "right", "top")
_QUALITIES = ("smeared", "blurred", "unnatural", "distorted", "inconsistent", "sharp", "natural")


def _corpus(rng: random.Random) -> list[str]:
    """Text shaped like the protocol's prompts and answers, so common pieces become single tokens."""

    def box() -> str:
        x1, y1 = rng.randint(0, 400), rng.randint(0, 400)
        return f"[{x1},{y1},{x1 + rng.randint(8, 300)},{y1 + rng.randint(8, 300)}]"

    words = " ".join(_WORDS)
    lines = [words, words.title(), *_PROMPTS] * 5
    for _ in range(600):
        verdict, i = rng.choice(("real", "fake")), rng.randint(1, 4)
        explanation = rng.choice(_EXPLANATIONS).format(
            a=rng.choice(_ARTIFACTS), p=rng.choice(_PLACES), q=rng.choice(_QUALITIES), i=i, v=verdict
        )
        boxes = "[" + ",".join(box() for _ in range(rng.randint(0, 4))) + "]"
        lines.append(f"<think>{explanation}</think>\n<boxes>{boxes}</boxes>\n<verdict>{verdict}</verdict>")
        lines.append(f"Region {i}: {box()}\n{explanation}")
    return lines


def _tokenizer(seed: int) -> Qwen2Tokenizer:
    """Train a small byte-level BPE with Qwen2's own pre-tokenizer and wrap it in Qwen2Tokenizer.

    Qwen2Tokenizer rebuilds its pre-tokenizer from code when reloaded (only vocab and merges are
    read from tokenizer.json), so training must use that same pipeline or reloads would tokenize
    differently. Its split regex isolates every digit (`\\p{N}`), which gives one token per digit.
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(random.Random(seed)), trainer=trainer)
    learned = json.loads(backend.to_str())["model"]
    vocab = dict(learned["vocab"])
    vocab.update({token: len(learned["vocab"]) + i for i, token in enumerate(SPECIAL_TOKENS)})
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(merge) for merge in learned["merges"]],
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
    )


# One template for the three families: for text, images and videos it renders byte for byte like
# the real Qwen2-VL / Qwen2.5-VL / Qwen3-VL templates (which differ only in the default system
# message), and marks each assistant turn, its closing <|im_end|> included, for
# `return_assistant_tokens_mask` (TRL's `assistant_only_loss`).
_CHAT_TEMPLATE = """
{%- macro render(content, counts) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- else -%}
        {%- for part in content -%}
            {%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
                {%- set counts.image = counts.image + 1 -%}
                {%- if add_vision_id %}Picture {{ counts.image }}: {% endif -%}
                <|vision_start|><|image_pad|><|vision_end|>
            {%- elif part['type'] == 'video' or 'video' in part -%}
                {%- set counts.video = counts.video + 1 -%}
                {%- if add_vision_id %}Video {{ counts.video }}: {% endif -%}
                <|vision_start|><|video_pad|><|vision_end|>
            {%- elif 'text' in part -%}
                {{- part['text'] -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- set counts = namespace(image=0, video=0) -%}
{%- if default_system and messages[0]['role'] != 'system' -%}
    {{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {{- '<|im_start|>' + message['role'] + '\\n' -}}
    {%- if message['role'] == 'assistant' -%}
        {%- generation -%}
            {{- render(message['content'], counts) + '<|im_end|>\\n' -}}
        {%- endgeneration -%}
    {%- else -%}
        {{- render(message['content'], counts) + '<|im_end|>\\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
{%- endif -%}
"""


def _chat_template(family: str) -> str:
    """The family's chat template: Qwen2(.5)-VL add a default system message, Qwen3-VL does not."""
    default_system = "" if family == "qwen3_vl" else "You are a helpful assistant."
    return "{%- set default_system = '" + default_system + "' -%}" + _CHAT_TEMPLATE


# Text and vision widths per size. `tiny` is for unit tests (well under 1M parameters); `small`
# trains on CPU in minutes and still sees enough of a 100-200 px image to learn local artifacts.
_SIZES = {
    "tiny": dict(text_hidden=64, text_layers=2, text_heads=4, text_mlp=128,
                 vision_hidden=32, vision_depth=2, vision_heads=2, vision_mlp=64, max_tokens=16),
    "small": dict(text_hidden=128, text_layers=4, text_heads=4, text_mlp=384,
                  vision_hidden=128, vision_depth=4, vision_heads=4, vision_mlp=256, max_tokens=64),
}  # fmt: skip


def _processor(family: str, max_tokens: int, tokenizer: Qwen2Tokenizer) -> ProcessorMixin:
    """The family's processor with its real patching but a budget of a few merged image tokens.

    Pixel bounds are set in merged tokens (`factor` = patch * merge pixels a side): `max_tokens` per
    image, by default 16 for `tiny` (112 px square for Qwen2(.5)-VL, 128 px for Qwen3-VL) and 64 for `small`.
    """
    qwen3 = family == "qwen3_vl"
    patch, merge = (16, 2) if qwen3 else (14, 2)
    factor = patch * merge
    common = dict(
        size={"shortest_edge": 4 * factor**2, "longest_edge": max_tokens * factor**2},
        patch_size=patch,
        temporal_patch_size=2,
        merge_size=merge,
    )
    if qwen3:  # Qwen3-VL normalises to [-1, 1] instead of with CLIP statistics
        common.update(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor_cls, video_cls = {
        "qwen2_5_vl": (Qwen2_5_VLProcessor, Qwen2VLVideoProcessor),
        "qwen2_vl": (Qwen2VLProcessor, Qwen2VLVideoProcessor),
        "qwen3_vl": (Qwen3VLProcessor, Qwen3VLVideoProcessor),
    }[family]
    return processor_cls(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=video_cls(**common),
        chat_template=_chat_template(family),
    )


ROPE_THETA = 10_000.0
"""The text model's rotary base. The real checkpoints use 1e6 (Qwen2(.5)-VL) and 5e6 (Qwen3-VL) for
heads of 64 frequency pairs and contexts of many thousand tokens; a tiny head has 16 pairs, and at
those bases their frequencies fall 2.6x per pair, so half of them turn by under 1e-3 rad per token
(no signal over a few-hundred-token context) and Qwen3-VL's interleaved width axis gets only 0.146
rad per column against height's 0.38. At 1e4 the 16 pairs span the contexts the tiny models see.
Measured on the demo (seed 2, one warm-up, SFT alone, 240 test images): the first located box in
the right column 0.40 of the time at 5e6 and 0.92 at 1e4 (rows 0.81 / 0.97); BENCHMARKS.md "Demo
over seeds"."""


def _config(family: str, size: str, max_tokens: int, tokenizer: Qwen2Tokenizer) -> PreTrainedConfig:
    """A config of the family's real class, shrunk; ids and rope sections kept consistent.

    mrope splits half the text head dim into (temporal, height, width) frequency sections in the
    real models' proportions: 16:24:24 contiguous for Qwen2(.5)-VL, 24:20:20 interleaved for Qwen3-VL;
    the rotary base is scaled to the tiny head (``ROPE_THETA``).
    """
    s = _SIZES[size]
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)), strict=True))
    head_dim = s["text_hidden"] // s["text_heads"]
    half = head_dim // 2
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=s["text_hidden"],
        intermediate_size=s["text_mlp"],
        num_hidden_layers=s["text_layers"],
        num_attention_heads=s["text_heads"],
        num_key_value_heads=s["text_heads"] // 2,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(depth=s["vision_depth"], num_heads=s["vision_heads"])
    top = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if family == "qwen3_vl":
        hw = half * 5 // 16
        text.update(
            head_dim=head_dim,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": ROPE_THETA,
                "mrope_section": [half - 2 * hw, hw, hw],
                "mrope_interleaved": True,
            },
        )
        vision.update(
            hidden_size=s["vision_hidden"],
            intermediate_size=s["vision_mlp"],
            out_hidden_size=s["text_hidden"],
            # One learned position per patch of a square image at the pixel bound; the grid is
            # interpolated to each image's own grid, as in the real model.
            num_position_embeddings=4 * max_tokens,
            # Real checkpoints tap 3 vision layers at about 1/4, 1/2, 3/4 depth into text layers 0-2.
            deepstack_visual_indexes=list(range(min(3, s["vision_depth"] - 1))),
        )
        return Qwen3VLConfig(text_config=text, vision_config=vision, **top)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": ROPE_THETA,
        "mrope_section": [half // 4, 3 * half // 8, 3 * half // 8],
    }
    if family == "qwen2_vl":
        vision.update(
            embed_dim=s["vision_hidden"],
            mlp_ratio=s["vision_mlp"] // s["vision_hidden"],
            hidden_size=s["text_hidden"],
        )
        return Qwen2VLConfig(text_config=text, vision_config=vision, **top)
    vision.update(
        hidden_size=s["vision_hidden"],
        intermediate_size=s["vision_mlp"],
        out_hidden_size=s["text_hidden"],
        # Real checkpoints alternate 112 px windows with a full-attention block every 8; at this depth
        # every other block is global, and `small` images (up to 224 px) really use the windows.
        fullatt_block_indexes=list(range(1, s["vision_depth"], 2)),
        window_size=112,
        tokens_per_second=2,
    )
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **top)


def build_tiny_vlm(
    family: str, size: str, out_dir: str | Path, seed: int = 0, max_image_tokens: int | None = None
) -> Path:
    """Write a model folder that AutoProcessor / AutoModelForImageTextToText reload offline.

    The weights are random (seeded, without touching the caller's RNG state); the tokenizer,
    processor, template and config are those a real checkpoint of `family` ships, scaled down.
    `max_image_tokens` caps the merged vision tokens per image (the processor's global view), by
    default the size's own: a lower cap makes the resize of a whole image discard fine detail that a
    zoomed crop keeps, as a real model's does on a large photograph.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    if max_image_tokens is not None and max_image_tokens < 4:
        raise ValueError(f"max_image_tokens must be at least 4 (the processor's minimum), got {max_image_tokens}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(seed)
    max_tokens = _SIZES[size]["max_tokens"] if max_image_tokens is None else max_image_tokens
    config = _config(family, size, max_tokens, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with no_progress_bars():
        model.save_pretrained(out)
    _processor(family, max_tokens, tokenizer).save_pretrained(out)
    return out


RELEASED_TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 32}
"""Text widths of :func:`build_released_vlm`'s models: two layers, heads of 32 dimensions (what
vLLM's CPU attention needs), every other size the released config's."""
RELEASED_VISION = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2}


def build_released_vlm(processor_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """A random-weight model of a released checkpoint's config class that speaks exactly what it speaks.

    ``processor_dir`` holds a released checkpoint's ``config.json`` and processor files (tokenizer,
    chat template, image processor with its pixel bounds), as in ``../shared/fixtures/qwen-processors``.
    The model keeps the real vocabulary, special-token ids, rotary layout (M-RoPE sections scaled to
    the smaller heads), patch and merge sizes; layers and widths shrink to :data:`RELEASED_TEXT` and
    :data:`RELEASED_VISION`, so a step runs on a CPU while every boundary a real run crosses (image
    token counts, template turns, the processor's limits) is the real one. Written with the processor
    and generation config, it reloads offline like a Hub checkpoint.
    """
    from transformers import AutoConfig, AutoProcessor

    src, out = Path(processor_dir), Path(out_dir)
    config = AutoConfig.from_pretrained(src)
    text, vision = config.text_config, config.vision_config
    scale = RELEASED_TEXT["head_dim"] / (getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
    rope = dict(text.rope_parameters)
    section = [round(s * scale) for s in rope["mrope_section"]]
    section[0] += RELEASED_TEXT["head_dim"] // 2 - sum(section)  # the sections fill half a head exactly
    rope["mrope_section"] = section
    if getattr(text, "layer_types", None):
        text.layer_types = text.layer_types[: RELEASED_TEXT["num_hidden_layers"]]
    for key, value in {**RELEASED_TEXT, "rope_parameters": rope}.items():
        setattr(text, key, value)
    for key, value in {**RELEASED_VISION, "out_hidden_size": RELEASED_TEXT["hidden_size"]}.items():
        setattr(vision, key, value)
    if config.model_type == "qwen3_vl":
        vision.deepstack_visual_indexes = [0]
    else:
        vision.fullatt_block_indexes = [1]
    config.tie_word_embeddings = text.tie_word_embeddings = True  # one 152k x 128 matrix, not two
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = GenerationConfig.from_pretrained(src)
    out.mkdir(parents=True, exist_ok=True)
    with no_progress_bars():
        model.save_pretrained(out)
    AutoProcessor.from_pretrained(src).save_pretrained(out)
    return out
