"""Random-weight Qwen2.5-VL models with the real 3B / 7B / 32B dimensions, built locally.

    python -m bench.random_vlm --size 3b --out /tmp/qwen2_5_vl_3b --device cuda
    python -m bench.random_vlm --size 7b --out /tmp/qwen2_5_vl_7b --device cuda \
        --processor ../shared/fixtures/qwen-processors/qwen2_5_vl_7b_instruct --budget recipes/qwen2_5_vl_7b/sft.yaml

GPU benchmarks need a model of real size and nothing downloaded: the published configs' dimensions
(below) and random weights in bf16. The processor is the released checkpoint's with ``--processor`` (a
folder of its files: the real tokenizer, chat template and image processor, so prompts, special-token ids
and image token counts are those of a real run), with ``--budget RECIPE``'s pixel budget applied as every
stage applies it; else the tokenizer, image processor and chat template that :mod:`zoomin.tiny` makes in
code, whose ids the small tokenizer never learned are filler entries so that every sampled id decodes.
Either way the vocabulary keeps its real size, so embedding, output layer and log-prob memory cost what
they do in the real model. ``--widths tiny`` keeps that vocabulary and the layout but shrinks layers and
widths, so the same path runs on a CPU in seconds (bench/gpu.sh's smoke test). ``launch/memory_table.py``
counts parameters from the same dimensions.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    GenerationConfig,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from zoomin.codecs import BoxCodec
from zoomin.tiny import SPECIAL_TOKENS, _chat_template, _tokenizer

# From the config.json of Qwen/Qwen2.5-VL-{3B,7B,32B}-Instruct.
TEXT = {
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "32b": dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False),
}  # fmt: skip
VISION_MLP = {"3b": 3420, "7b": 3420, "32b": 3456}
VISION = dict(depth=32, hidden_size=1280, num_heads=16, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
              window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)
# The real checkpoints' ids; a model built with zoomin.tiny's tokenizer uses that tokenizer's ids instead.
REAL_IDS = dict(zip(SPECIAL_TOKENS, range(151643, 151643 + len(SPECIAL_TOKENS)), strict=True))
TINY_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1)
"""Text widths of ``--widths tiny``: one head of the real 128 dimensions keeps the published M-RoPE sections."""
TINY_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=1, fullatt_block_indexes=[1])


def qwen2_5_vl_config(size: str, ids: dict[str, int] = REAL_IDS, tiny: bool = False) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL config of a published size; ``ids`` maps the special tokens to token ids; ``tiny``
    shrinks layers and widths (:data:`TINY_TEXT`, :data:`TINY_VISION`) and keeps the vocabulary."""
    text = dict(TEXT[size], **(TINY_TEXT if tiny else {}))
    tie = text.pop("tie_word_embeddings")
    # mrope splits half the 128-wide heads 16:24:24 (time, height, width), as in every published size.
    text.update(rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
                max_position_embeddings=128000, rms_norm_eps=1e-6, tie_word_embeddings=tie,
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = {**VISION, "intermediate_size": VISION_MLP[size], **(TINY_VISION if tiny else {}),
              "out_hidden_size": text["hidden_size"]}
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=tie,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip


def full_vocab_tokenizer(seed: int, vocab_size: int) -> Qwen2Tokenizer:
    """zoomin.tiny's tokenizer, its vocabulary filled up to the model's with plain ``<fillerN>`` entries.

    A random model samples any id, and the Trainer and vLLM must turn each one into text; the BPE
    never produces the filler entries, so encoding is unchanged and the special tokens keep their ids.
    """
    small = _tokenizer(seed)
    vocab = small.get_vocab()
    vocab.update({f"<filler{i}>": i for i in range(len(vocab), vocab_size)})
    merges = json.loads(small.backend_tokenizer.to_str())["model"]["merges"]
    return Qwen2Tokenizer(vocab=vocab, merges=[tuple(m) for m in merges], unk_token=None, eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=list(SPECIAL_TOKENS[1:]))


def released_processor(folder: str | Path, budget_recipe: str | Path | None = None) -> ProcessorMixin:
    """The released processor in ``folder``, with the pixel budget of ``budget_recipe`` (its ``protocol.codec``)
    applied as the stages apply it, so the saved model folder resizes images as that recipe's run does."""
    processor = AutoProcessor.from_pretrained(folder)
    if budget_recipe is not None:
        bounds = yaml.safe_load(Path(budget_recipe).read_text())["protocol"]["codec"]
        replace(BoxCodec.from_processor("qwen2_5_vl", processor), **bounds).apply_to(processor)
    return processor


def tiny_processor(seed: int, vocab_size: int, max_image_tokens: int) -> ProcessorMixin:
    """zoomin.tiny's tokenizer (filled to ``vocab_size``), image processor and template, at most
    ``max_image_tokens`` merged tokens per image (256: about 448 x 448 pixels)."""
    factor = VISION["patch_size"] * VISION["spatial_merge_size"]
    pixels = dict(size={"shortest_edge": 4 * factor**2, "longest_edge": max_image_tokens * factor**2},
                  patch_size=VISION["patch_size"], temporal_patch_size=2, merge_size=VISION["spatial_merge_size"])
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=full_vocab_tokenizer(seed, vocab_size), chat_template=_chat_template("qwen2_5_vl"),
    )  # fmt: skip


def build(size: str, out: str | Path, processor: ProcessorMixin, device: str = "cpu", seed: int = 0,
          tiny: bool = False) -> Path:
    """Write a bf16 random-weight model folder that from_pretrained, TRL and vLLM load like a Hub checkpoint,
    with ``processor`` (:func:`released_processor` or :func:`tiny_processor`)."""
    tokenizer = processor.tokenizer
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)), strict=True))
    config = qwen2_5_vl_config(size, ids, tiny)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                                               pad_token_id=ids["<|endoftext|>"])
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(TEXT), default="3b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where the random weights are made (a 3B model takes ~1 min on CPU cores, seconds on a GPU)")
    ap.add_argument("--processor", help="a folder of a released checkpoint's processor files (default: zoomin.tiny's)")
    ap.add_argument("--budget", metavar="RECIPE", help="with --processor: apply this recipe's pixel budget to it")
    ap.add_argument("--max-image-tokens", type=int, default=256, help="without --processor: the tiny processor's bound")
    ap.add_argument("--widths", choices=["real", "tiny"], default="real",
                    help="tiny: 2 small layers and the real vocabulary, for a CPU smoke test")
    args = ap.parse_args()
    if args.budget and not args.processor:
        ap.error("--budget applies to a released processor: give --processor too")
    processor = (released_processor(args.processor, args.budget) if args.processor
                 else tiny_processor(0, TEXT[args.size]["vocab_size"], args.max_image_tokens))
    print(build(args.size, args.out, processor, args.device, tiny=args.widths == "tiny"))


if __name__ == "__main__":
    main()
