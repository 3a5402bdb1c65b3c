"""Training entry points on a tiny model: SFT and GRPO stages, recipe checks, outputs, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rl.checkpoints import last_complete_checkpoint, resolve_resume
from rl.cli import main as cli
from rl.config import RecipeError, ZoomInGRPOConfig, ZoomInSFTConfig, check_grpo, parse
from rl.modeling import load_processor
from rl.preflight import budget_cuts
from rl.vllm import check_vllm_settings, engine_prompt_ids
from rl.warmup import ZoomInWarmupConfig
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import load_records
from zoomin.formats import locate_target
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
TINY = ["--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--logging_steps", "1",
        "--per_device_train_batch_size", "4", "--max_records", "8", "--seed", "0"]
CPU = ["--use_cpu", "true", "--bf16", "false"]
GRPO = [*TINY, "--num_generations", "4", "--max_completion_length", "16", "--learning_rate", "1e-4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("magnifake")
    synthesize(root, n=20, seed=1)
    return root / "train.jsonl"


def _run(command: str, model: Path, data: Path, out: Path, *extra: str) -> None:
    base = GRPO if command == "grpo" else TINY
    argv = [command, "--model_name_or_path", str(model), "--train_data", str(data), "--output_dir", str(out),
            "--save_strategy", "no", *base, *extra]
    assert cli(argv) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_writes_a_loadable_zoomin_model(tiny_vlm, data, tmp_path, lora):
    out = tmp_path / "sft"
    extra = ["--max_steps", "2"] + (["--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj",
                                     "v_proj"] if lora else ["--freeze_vision", "true"])
    _run("sft", tiny_vlm(), data, out, *extra)
    info = CheckpointInfo.load(out)
    assert info.family == "qwen2_5_vl" and info.protocol.codec.max_pixels > 0
    assert (out / "curves.png").stat().st_size > 0 and (out / "data_report.json").exists()
    assert (out / "command.txt").read_text().startswith("zoomin sft ")
    assert (out / ("adapter_model.safetensors" if lora else "model.safetensors")).exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "extra", "terms"),
    [
        ("locate", [], ["format_locate", "box_iou"]),
        ("examine", [], ["verdict", "bleu2", "format_examine", "zoom_consistency"]),
        ("examine", ["--crop_source", "policy", "--rewards", "verdict", "zoom_coverage"], ["verdict", "zoom_coverage"]),
        ("locate", ["--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj"],
         ["format_locate", "box_iou"]),
    ],
    ids=["locate", "examine", "examine-policy-crops", "locate-lora"],
)
def test_grpo_stages_log_every_reward_term(tiny_vlm, data, tmp_path, stage, extra, terms):
    out = tmp_path / stage
    _run("grpo", tiny_vlm(), data, out, "--stage", stage, "--max_steps", "2", *extra)
    assert CheckpointInfo.load(out).family == "qwen2_5_vl" and (out / "curves.png").exists()
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"][0]
    for term in terms:
        assert f"rewards/{term}/mean" in logged and f"rewards/{term}/std" in logged


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["locate", "examine"])
def test_grpo_scores_held_out_prompts_before_and_after_with_trls_eval(tiny_vlm, data, tmp_path, stage):
    """eval_data reaches TRL's evaluation: the stage's rewards on held-out prompts at the first step and
    the last, which says whether the stage raised its own reward on the same prompts."""
    out = tmp_path / stage
    _run("grpo", tiny_vlm(), data, out, "--stage", stage, "--max_steps", "2", "--crop_source", "policy",
         "--eval_data", str(data.parent / "test.jsonl"), "--max_eval_records", "3", "--eval_strategy", "steps",
         "--eval_steps", "2", "--eval_on_start", "true", "--per_device_eval_batch_size", "2",
         "--num_generations_eval", "2")
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [log["step"] for log in logs if "eval_reward" in log] == [0, 2]
    assert json.loads((out / "eval_data_report.json").read_text())["n_good"] == 4


def test_each_evaluation_draws_the_same_samples_and_leaves_training_rng_alone(tiny_vlm, data, tmp_path):
    import torch

    from rl.grpo import build

    trainer, _, _ = build(["--model_name_or_path", str(tiny_vlm()), "--train_data", str(data), "--output_dir",
                           str(tmp_path), *GRPO, "--eval_data", str(data.parent / "test.jsonl"), "--max_eval_records",
                           "2", "--per_device_eval_batch_size", "4", "--max_completion_length", "8"])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = trainer.evaluate(), trainer.evaluate()
    assert torch.equal(torch.get_rng_state(), state)
    assert first["eval_entropy"] == second["eval_entropy"]  # the entropy of the tokens drawn: the same draws
    trainer.args.seed += 1
    assert trainer.evaluate()["eval_entropy"] != first["eval_entropy"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train_data", "nope.jsonl"], "train_data: no such file"),
        (["--rewards", "box_iou", "no_such_term"], "no_such_term"),
        (["--rewards", "box_iou", "format_locate", "--reward_weights", "1.0"], "weights"),
        (["--stage", "examine", "--crop_source", "locator"], "needs locator_checkpoint"),
        (["--stage", "dance"], "unknown stage 'dance'"),
        (["--crop_source", "magic"], "unknown crop_source"),
        (["--protocol", "{not json"], "protocol"),
        (["--stage", "joint"], "examine_in_context"),
        (["--eval_strategy", "steps"], "needs eval_data"),
    ],
)
def test_bad_recipes_fail_before_any_model_loads(tiny_vlm, data, tmp_path, extra, message):
    argv = ["--model_name_or_path", str(tiny_vlm()), "--train_data", str(data), "--output_dir", str(tmp_path), *CPU,
            *extra]
    run, model = parse(ZoomInGRPOConfig, argv)
    with pytest.raises(RecipeError, match=message):
        check_grpo(run, model)


def test_a_completion_budget_that_cuts_the_reference_answers_is_named(tiny_vlm, data):
    """A rollout cut at max_completion_length fails the format reward whatever it says, so the stage
    would reward short answers: the budget is measured against the answers SFT taught."""
    processor = load_processor(tiny_vlm())
    protocol = ProtocolConfig(codec=BoxCodec.from_processor("qwen2_5_vl", processor))
    records = load_records(data)[0]
    tokens = {kind: [len(processor.tokenizer(answer(r))["input_ids"]) + 1 for r in records] for kind, answer in {
        "locate": lambda r: locate_target(r, protocol),
        "examine": lambda r: protocol.render_examine(r.explanation, r.label)}.items()}
    longest = max(tokens["locate"])
    message = budget_cuts(records, "locate", "annotations", protocol, processor.tokenizer, longest - 1)
    assert message is not None and f"to {longest} or more" in message
    assert f"cuts {tokens['locate'].count(longest)} reference answers" in message
    assert budget_cuts(records, "locate", "annotations", protocol, processor.tokenizer, longest) is None
    # query 1 runs under the examine stage's budget when the policy locates its crops
    cut = {kind: sum(n > longest - 1 for n in counts) for kind, counts in tokens.items()}
    alone = budget_cuts(records, "examine", "annotations", protocol, processor.tokenizer, longest - 1)
    policy = budget_cuts(records, "examine", "policy", protocol, processor.tokenizer, longest - 1)
    assert f"cuts {cut['examine']} reference" in alone and f"cuts {cut['examine'] + cut['locate']} reference" in policy


def test_unknown_model_family_and_unknown_yaml_key(data, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    run, model = parse(ZoomInGRPOConfig, ["--model_name_or_path", str(tmp_path / "m"), "--train_data", str(data),
                                          "--output_dir", str(tmp_path), *CPU])
    with pytest.raises(RecipeError, match="no box codec"):
        check_grpo(run, model)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train_data": str(data), "lerning_rate": 1e-5}))
    with pytest.raises(RecipeError, match="lerning_rate"):
        parse(ZoomInGRPOConfig, ["--config", str(recipe), *CPU])


def test_cli_reports_recipe_errors_in_one_line(tiny_vlm, data, tmp_path, capsys):
    code = cli(["grpo", "--model_name_or_path", str(tiny_vlm()), "--train_data", str(data), "--output_dir",
                str(tmp_path), *CPU, "--rewards", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("zoomin grpo: error:") and "Traceback" not in err


STAGE_CONFIGS = {"grpo": ZoomInGRPOConfig, "sft": ZoomInSFTConfig, "warmup": ZoomInWarmupConfig}


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_recipes_parse_and_check(recipe, tiny_vlm, tmp_path):
    """Every recipe parses with the real parser, starts with its launch command, and passes the
    pre-flight checks once its model and data paths point at local stand-ins (no download)."""
    text = recipe.read_text()
    command = text.splitlines()[0]
    stage = next(name for name in STAGE_CONFIGS if recipe.name.startswith(name))
    assert command.startswith("# ") and f" {stage} --config {recipe.relative_to(REPO)}" in command
    synthesize(tmp_path / "d", n=4, seed=0)
    config_cls = STAGE_CONFIGS[stage]
    held_out = ["--eval_data", str(tmp_path / "d" / "test.jsonl")] if "\neval_data:" in text else []
    run, model = parse(config_cls, ["--config", str(recipe), "--model_name_or_path", str(tiny_vlm()),
                                    "--train_data", str(tmp_path / "d" / "train.jsonl"), "--output_dir", str(tmp_path),
                                    *held_out, *CPU])
    if recipe.parent.name.startswith(("qwen2_5_vl_", "qwen3_vl_")):  # the paper's settings
        assert model.dtype == "bfloat16" and "bf16: true" in text
        if "grpo" in recipe.name:
            assert run.num_generations == 4
            assert run.learning_rate == (5e-5 if model.use_peft else 1e-5)
            assert "zero3.yaml" in text.splitlines()[0] or model.use_peft
        else:
            assert run.learning_rate == 2e-5
    if "grpo" in recipe.name:
        check_grpo(run, model)
        if run.use_vllm:  # on the GPUs the header launches (lengths: tests/test_real_processors.py)
            check_vllm_settings(run, 16 if "--nodes 2" in command else 8)


def test_vllm_preflight_rejects_what_the_engine_cannot_honour(tiny_vlm, data, tmp_path):
    base = ["--model_name_or_path", str(tiny_vlm()), "--train_data", str(data), "--output_dir", str(tmp_path), *CPU,
            "--use_vllm", "true", "--max_completion_length", "512"]
    for extra, world, message in [
        (["--vllm_mode", "remote"], 1, "vllm_mode"),
        (["--vllm_tensor_parallel_size", "3"], 8, "does not divide"),
        (["--vllm_mode", "server", "--vllm_server_host", ""], 1, "vllm_server_host"),
    ]:
        run, _ = parse(ZoomInGRPOConfig, [*base, *extra])
        with pytest.raises(RecipeError, match=message):
            check_vllm_settings(run, world)
    run, _ = parse(ZoomInGRPOConfig, base)
    check_vllm_settings(run, 1)


def test_engine_prompt_ids_collapse_each_image_run_to_one_placeholder():
    pad = 7
    assert engine_prompt_ids([[1, 7, 7, 7, 2, 3, 7, 7, 4], [7], [1, 2]], pad) == [[1, 7, 2, 3, 7, 4], [7], [1, 2]]


def test_resume_picks_only_complete_checkpoints(tmp_path):
    for step, complete in [(2, True), (4, True), (6, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
        if complete:
            (folder / "zoomin.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert resolve_resume("last", str(tmp_path)) == str(tmp_path / "checkpoint-4")
    assert resolve_resume(None, str(tmp_path)) is None
    assert resolve_resume("last", str(tmp_path / "empty")) is None
    with pytest.raises(ValueError, match="not completely saved"):
        resolve_resume(str(tmp_path / "checkpoint-6"), str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["grpo"])
def test_sigkill_after_a_checkpoint_then_resume_to_the_same_final_step(tiny_vlm, data, tmp_path, command):
    out = tmp_path / "run"
    base = GRPO if command == "grpo" else TINY
    argv = [sys.executable, "-m", "rl.cli", command, "--model_name_or_path", str(tiny_vlm()), "--train_data",
            str(data), "--output_dir", str(out), *base, "--max_steps", "12", "--save_strategy", "steps",
            "--save_steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while last_complete_checkpoint(out) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = int(last_complete_checkpoint(out).name.split("-")[1])
    assert killed_at < 12
    resumed = subprocess.run([*argv, "--resume_from_checkpoint", "last"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 12 and last_complete_checkpoint(out).name == "checkpoint-12"


@pytest.mark.slow
def test_joint_trains_both_turns_and_never_the_inserted_crops(tiny_vlm, data, tmp_path, monkeypatch):
    """A random model names no boxes, so query 1 is scripted to name two; everything after it (crops,
    the inserted turn, query 2, the loss) is the real path."""
    from trl import GRPOTrainer

    from rl.joint import JointGRPOTrainer
    from zoomin.protocol import ProtocolConfig

    answer = ProtocolConfig().render_locate("Region 1: smear.", [[4, 4, 40, 40], [10, 10, 60, 50]], "fake")
    generate, joint_generate = GRPOTrainer._generate, JointGRPOTrainer._generate
    seen = {}

    def scripted(self, prompts):
        out = list(generate(self, prompts))
        out[3] = [[{"role": "assistant", "content": answer}] for _ in out[3]]
        return tuple(out)

    def spy(self, prompts):
        out = joint_generate(self, prompts)
        seen.update(completion_ids=out[1], tool_mask=out[2], images=out[6], pad=self._image_pad_token_id,
                    suppressed=self.generation_config.suppress_tokens)
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate", scripted)
    monkeypatch.setattr(JointGRPOTrainer, "_generate", spy)
    out = tmp_path / "joint"
    _run("grpo", tiny_vlm(), data, out, "--stage", "joint", "--protocol", '{"examine_in_context": true}',
         "--max_steps", "1")
    for ids, mask, images in zip(seen["completion_ids"], seen["tool_mask"], seen["images"]):
        inserted = [t for t, m in zip(ids, mask) if m == 0]
        assert len(images) == 3 and seen["pad"] in inserted  # original + 2 crops; crop tokens are masked
        assert seen["pad"] not in [t for t, m in zip(ids, mask) if m == 1]
        assert mask[0] == 1 and mask[-1] == 1  # both generated turns are trained
    assert seen["pad"] in seen["suppressed"]  # the policy can never write an image slot itself
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"][0]
    assert logged["zoom/mean_regions"] == 2
    for term in ["format_locate", "box_iou", "verdict", "zoom_consistency"]:
        assert f"rewards/{term}/mean" in logged
    assert logged["rewards/format_locate/mean"] == 1.0  # locate terms read the scripted locate answer


@pytest.mark.slow
def test_locator_boxes_are_computed_once_and_cached(tiny_vlm, data, tmp_path, monkeypatch):
    """crop_source locator: the frozen locator runs once before training, batch by batch, and a rerun
    with the same locator and data reads its boxes from the run folder instead of locating again."""
    import shutil

    from rl.grpo import locator_boxes
    from zoomin.detector import ZoomInDetector

    locator = tmp_path / "locator"
    shutil.copytree(tiny_vlm(), locator)
    codec = BoxCodec.from_processor("qwen2_5_vl", load_processor(str(locator)))
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 8}}).save(locator)
    out = tmp_path / "examine"
    _run("grpo", tiny_vlm(), data, out, "--stage", "examine", "--max_steps", "1", "--crop_source", "locator",
         "--locator_checkpoint", str(locator), "--per_device_eval_batch_size", "3")
    records, _ = load_records(data)
    cached = json.loads((out / "locator_boxes.json").read_text())
    assert sorted(cached["boxes"]) == sorted(r.id for r in records[:8])

    def refuse(*args, **kwargs):
        raise AssertionError("the locator ran again although its boxes were cached")

    monkeypatch.setattr(ZoomInDetector, "from_pretrained", refuse)
    assert locator_boxes(str(locator), records[:8], out / "locator_boxes.json") == cached["boxes"]
    with pytest.raises(AssertionError, match="ran again"):  # other data: another key
        locator_boxes(str(locator), records[:7], out / "locator_boxes.json")
