"""The real path: the released Qwen2.5-VL and Qwen3-VL processors on real-resolution and odd images.

Models here are random weights of the real config classes built from the released processor,
tokenizer and chat-template files (``zoomin.tiny.build_released_vlm``): real vocabulary, special-token
ids, templates and pixel limits, two small layers. Every stage runs under a small pixel budget, set as
a recipe sets it, on photographs of 1 to 12 MP, so image-token counts, the box frame and the zoom
are those of a real run. Without ``../shared`` these tests skip with the reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from realpath import released, write_odd_files, write_real_folder
from transformers import AutoProcessor

from rl.cli import main as cli
from rl.config import ZoomInSFTConfig, parse
from rl.modeling import build_protocol, load_processor
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import load_records
from zoomin.detector import ZoomInDetector
from zoomin.formats import reference_answers
from zoomin.tiny import build_released_vlm

REPO = Path(__file__).resolve().parents[1]
CPU = ["--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false", "--dtype", "float32",
       "--report_to", "none", "--save_strategy", "no", "--seed", "0"]
BUDGETS = {  # a recipe's pixel budget, small enough for CPU steps: 16-64 tokens per image and per crop
    "qwen2_5_vl": {"codec": {"min_pixels": 28 * 28 * 16, "max_pixels": 28 * 28 * 64},
                   "crop": {"min_longest": 224, "max_crop_pixels": 28 * 28 * 64}},
    "qwen3_vl": {"codec": {"min_pixels": 32 * 32 * 16, "max_pixels": 32 * 32 * 64},
                 "crop": {"min_longest": 256, "max_crop_pixels": 32 * 32 * 64}},
}
FAMILIES = sorted(BUDGETS)


@pytest.fixture(scope="module")
def real_data(tmp_path_factory) -> Path:
    """Photographs of 1 to 12 MP, aspect ratios 1:8 to 8:1, two under the processors' minimum."""
    return write_real_folder(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def magnifake_size(tmp_path_factory) -> Path:
    """2-4 MP photographs, the size of MagniFake's (ImageNet, COCO and generators' outputs)."""
    return write_real_folder(tmp_path_factory.mktemp("mf"), [(2048, 1536), (1536, 2048), (2000, 2000), (2400, 1600)])


@pytest.fixture(scope="module")
def released_model(tmp_path_factory):
    """``get(family)``: a random-weight model folder of the released config with its processor."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_released_vlm(released(family), tmp_path_factory.mktemp(family))
        return built[family]

    return get


def _zoomin(*argv: str, capsys=None) -> tuple[int, str]:
    code = cli(list(argv))
    out = capsys.readouterr() if capsys else None
    return code, (out.out + out.err) if out else ""


# ---- zoomin check on every shipped recipe ------------------------------------------------------------

SCALE_RECIPES = sorted(p for p in (REPO / "recipes").glob("qwen*/*.yaml"))


def _family(recipe: Path) -> str:
    return "qwen3_vl" if recipe.parent.name.startswith("qwen3_vl") else "qwen2_5_vl"


def _sft_output(family: str, sft_recipe: Path, data: Path, folder: Path) -> Path:
    """What the recipe's SFT stage leaves for GRPO to start from (weights aside): the processor
    saved under the SFT recipe's pixel budget, the config, and zoomin.json with its protocol."""
    processor = load_processor(str(released(family)))
    run, _ = parse(ZoomInSFTConfig, ["--config", str(sft_recipe), "--model_name_or_path", str(released(family)),
                                     "--train_data", str(data), "--output_dir", str(folder), "--bf16", "false",
                                     "--use_cpu", "true"])
    protocol = build_protocol(family, processor, run.protocol)
    processor.save_pretrained(folder)
    shutil.copy(released(family) / "config.json", folder / "config.json")
    CheckpointInfo(protocol=protocol).save(folder)
    return folder


@pytest.mark.parametrize("recipe", SCALE_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_zoomin_check_passes_every_scale_recipe_on_its_released_processor(recipe, magnifake_size, tmp_path, capsys):
    family = _family(recipe)
    model = released(family) if recipe.name.startswith("sft") else \
        _sft_output(family, recipe.parent / "sft.yaml", magnifake_size, tmp_path / "sft")
    code, out = _zoomin("check", "--config", str(recipe), "--model_name_or_path", str(model),
                        "--train_data", str(magnifake_size), "--output_dir", str(tmp_path / "out"), capsys=capsys)
    assert code == 0, out
    assert "can start" in out and "zoom factor on annotated boxes" in out and "zooms out" not in out


def test_check_names_each_setting_too_short_with_the_number_needed(magnifake_size, tmp_path, capsys):
    sft = REPO / "recipes/qwen2_5_vl_7b/sft.yaml"
    base = ["--model_name_or_path", str(released("qwen2_5_vl")), "--train_data", str(magnifake_size),
            "--output_dir", str(tmp_path)]
    code, out = _zoomin("check", "--config", str(sft), *base, "--max_length", "1024", capsys=capsys)
    assert code == 1 and "max_length 1024 would cut image or answer tokens" in out and "set max_length to" in out

    # the first contact: GRPO straight from the released processor's 16,384-token bound
    locate = REPO / "recipes/qwen2_5_vl_7b/grpo_locate.yaml"
    code, out = _zoomin("check", "--config", str(locate), *base, capsys=capsys)
    assert code == 1 and "vllm_max_model_length 4096 cannot hold the longest locate rollout" in out

    # the old crop policy under the released bound: crops at 112 px of 400 px windows zoom out
    code, out = _zoomin("check", "--config", str(sft), *base, "--protocol", '{"crop": {"resize_longest": 112}}',
                        capsys=capsys)
    assert "the crop policy zooms out" in out


def test_vllm_engine_must_load_the_budget_it_is_trained_under(magnifake_size, tmp_path, capsys):
    examine = REPO / "recipes/qwen2_5_vl_7b/grpo_examine.yaml"
    code, out = _zoomin("check", "--config", str(examine), "--model_name_or_path", str(released("qwen2_5_vl")),
                        "--train_data", str(magnifake_size), "--output_dir", str(tmp_path),
                        "--protocol", json.dumps({"codec": {"max_pixels": 1003520}}), capsys=capsys)
    assert code == 1 and "the vLLM engine loads its processor from" in out and "1003520" in out


# ---- odd images ------------------------------------------------------------------------------------


def test_validation_flags_what_the_processors_refuse_and_keeps_the_rest(tmp_path):
    files = write_odd_files(tmp_path)
    rows = [{"id": name, "image": path.name, "label": "real", "boxes": [], "explanation": "Looks natural."}
            for name, path in files.items()]
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, report = load_records(tmp_path / "odd.jsonl")
    assert [f.id for f in report.errors] == ["strip_3000x10.png"]
    assert "aspect ratio of 300:1" in str(report.errors[0])
    sizes = {r.id: r.image_size for r in records}
    assert sizes["exif_rotated.jpg"] == (200, 300)  # the displayed orientation, which boxes refer to
    assert sizes["one_pixel.png"] == (1, 1) and sizes["strip_20000x200.png"] == (20000, 200)


# ---- every stage on the real processors --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_stage_runs_on_the_released_processor(family, released_model, real_data, tmp_path, capsys):
    model, budget = released_model(family), BUDGETS[family]
    protocol = json.dumps(budget)
    common = ["--train_data", str(real_data), *CPU]

    # SFT: its loss covers exactly the answer tokens of the real template
    from rl.sft import main as sft

    trainer = sft(["--model_name_or_path", str(model), "--output_dir", str(tmp_path / "sft"), "--max_steps", "2",
                   "--per_device_train_batch_size", "2", "--max_length", "4096", "--protocol", protocol, *common])
    records, _ = load_records(real_data)
    info = CheckpointInfo.load(tmp_path / "sft")
    answers = {a + "<|im_end|>" for r in records for a in reference_answers(r, info.protocol).values()}
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class.tokenizer
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        assert tokenizer.decode(ids[labels != -100]).rstrip("\n") in answers
    assert {k: getattr(info.protocol.codec, k) for k in budget["codec"]} == budget["codec"]
    saved = BoxCodec.from_processor(family, AutoProcessor.from_pretrained(tmp_path / "sft"))
    assert saved == info.protocol.codec  # the processor a later stage or an engine loads carries the budget

    grpo = [*common, "--num_generations", "2", "--per_device_train_batch_size", "2", "--max_steps", "1",
            "--max_completion_length", "24", "--learning_rate", "1e-5"]
    sft_dir = str(tmp_path / "sft")
    assert cli(["grpo", "--model_name_or_path", sft_dir, "--output_dir", str(tmp_path / "locate"), "--stage", "locate",
                *grpo]) == 0
    assert cli(["grpo", "--model_name_or_path", str(tmp_path / "locate"), "--output_dir", str(tmp_path / "examine"),
                "--stage", "examine", "--crop_source", "policy", *grpo]) == 0
    assert cli(["grpo", "--model_name_or_path", sft_dir, "--output_dir", str(tmp_path / "joint"), "--stage", "joint",
                "--protocol", '{"examine_in_context": true}', *grpo]) == 0
    generation = CheckpointInfo.load(tmp_path / "examine").generation
    assert generation["examine"]["max_new_tokens"] == 24  # what GRPO examine trained under
    assert generation["locate"]["max_new_tokens"] == 24  # GRPO locate's, kept by the examine stage

    # another budget than the checkpoint's is refused, naming both
    capsys.readouterr()
    other = json.dumps({"codec": {"max_pixels": 2 * budget["codec"]["max_pixels"]}})
    code = cli(["grpo", "--model_name_or_path", sft_dir, "--output_dir", str(tmp_path / "no"), *grpo,
                "--protocol", other])
    err = capsys.readouterr().err
    assert code == 2 and str(budget["codec"]["max_pixels"]) in err and str(2 * budget["codec"]["max_pixels"]) in err

    # export carries the budget; detect, eval and the app serve with it; odd files are refused one by one
    ckpt = tmp_path / "ckpt"
    assert cli(["export", "--from", str(tmp_path / "examine"), "--out", str(ckpt)]) == 0
    detector = ZoomInDetector.from_pretrained(ckpt)
    assert detector.protocol.codec == info.protocol.codec
    assert BoxCodec.from_processor(family, detector.processor) == info.protocol.codec
    odd = write_odd_files(tmp_path / "odd")
    capsys.readouterr()
    code = cli(["detect", *map(str, odd.values()), "--checkpoint", str(ckpt), "--json", "--batch-size", "4"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(lines) == len(odd) - 1 and "strip_3000x10.png" in err
    for line in lines:  # boxes in the displayed image's pixels
        w, h = line["image_size"]
        assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in line["boxes"])
    assert cli(["eval", "--checkpoint", str(ckpt), "--data", str(real_data), "--out", str(tmp_path / "m.json"),
                "--limit", "3"]) == 0

    # a processor edited after training is refused at serving time, naming both
    processor = AutoProcessor.from_pretrained(ckpt)
    BoxCodec(family, info.protocol.codec.patch_size, 2, info.protocol.codec.min_pixels,
             2 * info.protocol.codec.max_pixels).apply_to(processor)
    processor.save_pretrained(ckpt)
    with pytest.raises(ValueError, match="was trained with box codec and pixel budget"):
        ZoomInDetector.from_pretrained(ckpt)


@pytest.mark.parametrize("family", FAMILIES)
def test_preflight_lengths_hold_what_the_processor_really_makes(family, real_data):
    """The pre-flight's counts, checked against the processor's own expansion of every SFT example
    and locate prompt of real-resolution images: never short, and over by at most the digits of the
    region lines, which are counted at their widest."""
    from rl.preflight import Lengths
    from zoomin.formats import sft_dataset

    processor = load_processor(str(released(family)))
    protocol = build_protocol(family, processor, BUDGETS[family])
    records, _ = load_records(real_data)
    lengths = Lengths(protocol, processor)
    answers = lengths.answer_tokens(records)
    rows = sft_dataset(records, protocol)
    for i, record in enumerate(records):
        for query, row in (("locate", rows[2 * i]), ("examine", rows[2 * i + 1])):
            text = processor.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
            real = len(processor(text=[text], images=row["images"])["input_ids"][0])
            counted = lengths.prompt(record, query, answered=True) + answers[query][i]
            regions = len(row["images"]) - 1
            slack = regions * 4 * len(str(protocol.codec.max_coordinate))  # a digit a token, at most
            assert real <= counted <= real + slack + 1, (record.id, query, real, counted)
