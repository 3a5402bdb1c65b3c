"""What the trainers rely on in TRL's private GRPOTrainer internals, checked against the installed TRL.

Each behaviour named in :mod:`rl.trl_adapter` (and the ``_generate_single_turn`` hook that
:class:`rl.trainer.ZoomInGRPOTrainer` overrides) has a test here, so a TRL upgrade that moves one fails
in this file, by name, instead of in the middle of a run. One tiny joint-stage trainer serves them all.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from trl import GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from rl import trl_adapter as trl
from rl.grpo import build
from rl.trainer import ZoomInGRPOTrainer
from rl.vllm import UNEXPANDED_IDS_PARAMETER, engine_prompt_ids
from zoomin.synth import synthesize

ARGS = ["--stage", "joint", "--protocol", '{"examine_in_context": true}', "--attn_implementation", "eager",
        "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--per_device_train_batch_size", "4",
        "--num_generations", "4", "--max_completion_length", "6", "--max_records", "4", "--seed", "0"]


@pytest.fixture(scope="module")
def trainer(tiny_vlm, tmp_path_factory) -> GRPOTrainer:
    root = tmp_path_factory.mktemp("contract")
    synthesize(root / "data", n=6, seed=2)
    built, _, _ = build(["--model_name_or_path", str(tiny_vlm()), "--train_data", str(root / "data" / "train.jsonl"),
                         "--output_dir", str(root / "out"), *ARGS])
    return built


def _prompts(trainer: GRPOTrainer, n: int = 2) -> list:
    """Query-1 prompts as TRL's ``_generate_and_score_completions`` hands them to ``_generate``."""
    rows = [trainer.train_dataset[i] for i in range(n)]
    return [prepare_multimodal_messages(row["prompt"], images=row["images"]) for row in rows]


def test_generate_single_turn_takes_trls_arguments_and_the_fixed_trls_engine_ids():
    ours = list(inspect.signature(ZoomInGRPOTrainer._generate_single_turn).parameters)
    theirs = list(inspect.signature(GRPOTrainer._generate_single_turn).parameters)
    assert ours[: len(theirs)] == theirs
    assert set(ours) - set(theirs) <= {UNEXPANDED_IDS_PARAMETER}
    assert UNEXPANDED_IDS_PARAMETER in ours


def test_a_call_as_the_fixed_trl_makes_it_generates(trainer):
    """TRL's fix passes the engine's ids as ``vllm_prompt_ids``; the override must take them (with
    transformers generation they play no part)."""
    prompt_ids, images, fields = trainer._tokenize_prompts(_prompts(trainer, 1))
    pad = trainer.processing_class.image_token_id
    ids, _ = trainer._generate_single_turn(prompt_ids, images, fields, 1, False,
                                           vllm_prompt_ids=engine_prompt_ids(prompt_ids, pad))
    assert len(ids) == 1


def _recorder(calls: list, fixed: bool):
    """A stand-in for TRL's ``_generate_single_turn``, with 1.16's signature or the fixed one."""
    if fixed:
        def single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False,
                        vllm_prompt_ids=None):
            calls.append({"prompt_ids": prompt_ids, "vllm_prompt_ids": vllm_prompt_ids})
            return [[1]] * len(prompt_ids), None
    else:
        def single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            calls.append({"prompt_ids": prompt_ids})
            return [[1]] * len(prompt_ids), None
    return single_turn


@pytest.mark.parametrize("fixed", [False, True], ids=["trl-1.16", "trl-fixed"])
def test_the_engine_gets_one_placeholder_per_image_under_either_trl(trainer, monkeypatch, fixed):
    """Colocated vLLM: 1.16 gets collapsed ids as ``prompt_ids`` (its vLLM branch sends them to the engine
    only); a fixed TRL keeps the expanded ids and gets ours through ``vllm_prompt_ids``, and ids it made
    itself pass through untouched."""
    calls: list[dict] = []
    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", _recorder(calls, fixed))
    monkeypatch.setattr(trainer, "use_vllm", True)
    monkeypatch.setattr(trainer, "collapse_image_runs", True)
    pad = trainer.processing_class.image_token_id
    expanded = [[5, pad, pad, pad, 6]]
    trainer._generate_single_turn(expanded, None, {}, 1)
    if fixed:
        assert calls[-1] == {"prompt_ids": expanded, "vllm_prompt_ids": [[5, pad, 6]]}
        trainer._generate_single_turn(expanded, None, {}, 1, vllm_prompt_ids=[[7, pad]])
        assert calls[-1] == {"prompt_ids": expanded, "vllm_prompt_ids": [[7, pad]]}
    else:
        assert calls[-1] == {"prompt_ids": [[5, pad, 6]]}


def test_generate_returns_eight_fields_in_the_adapters_order(trainer):
    prompts = _prompts(trainer)
    trainer.tools = [trl.zoom]  # left set by a previous joint batch: query 1 must not see it
    out = trl.generate_plain(trainer, prompts)
    assert len(GRPOTrainer._generate(trainer, prompts)) == len(trl.Generation._fields)
    pad = trainer.processing_class.image_token_id
    plain_ids, _, _ = trainer._tokenize_prompts(prompts)
    assert out.prompt_ids == plain_ids and all(pad in ids for ids in out.prompt_ids)
    texts = trainer.processing_class.batch_decode(out.completion_ids, skip_special_tokens=True)
    assert [c[0]["content"] for c in out.completions] == texts
    assert out.tool_mask is None and out.logprobs is None and out.extra_fields == {}
    assert [len(images) for images in out.images] == [1, 1] and out.tool_images == []


def test_inserted_images_are_marked_for_generation_only_with_tools_on(trainer, monkeypatch):
    seen: list[dict] = []
    model = trainer.model
    generate = model.generate

    def spy(**kwargs):
        seen.append(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    prompt_ids, images, _ = trainer._tokenize_prompts(_prompts(trainer, 1))
    pixels = trainer.processing_class.image_processor(images=images[0], return_tensors="pt")
    fields = trl.to_device(trainer, pixels)
    assert fields["pixel_values"].device == trainer.accelerator.device
    trl.generate_after_insert(trainer, prompt_ids, images, fields)
    marks = seen[-1]["mm_token_type_ids"]
    assert torch.equal(marks.bool(), seen[-1]["input_ids"] == trainer.processing_class.image_token_id)
    trainer.tools = None
    trainer._generate_single_turn(prompt_ids, images, fields, 1, has_tool_images=True)
    assert "mm_token_type_ids" not in seen[-1]


def _loss(trainer: GRPOTrainer, completion: list[int], tool_mask: list[int] | None) -> float:
    prompt = trainer.processing_class.tokenizer("Is it fake?", return_tensors="pt")["input_ids"]
    n = len(completion)
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": torch.tensor([completion]),
              "completion_mask": torch.ones(1, n, dtype=torch.long), "advantages": torch.ones(1),
              "num_items_in_batch": torch.tensor(float(n)), "old_per_token_logps": torch.zeros(1, n)}
    if tool_mask is not None:
        inputs["tool_mask"] = torch.tensor([tool_mask])
    with torch.no_grad():
        return trainer._compute_loss(trainer.model, inputs).item()


def test_tool_mask_zeros_are_left_out_of_the_loss(trainer):
    """Tokens marked 0 at the end of a completion can change without changing the loss; marked 1 they count.
    (With old log-probabilities of 0 each token's ratio is its own probability, so every counted token
    moves the loss.)"""
    trainer.model.eval()
    generated, inserted_a, inserted_b = [11, 12, 13], [21, 22, 23], [31, 32, 33]
    mask = trl.trajectory_mask([(3, True), (3, False)])
    assert mask == [1, 1, 1, 0, 0, 0]
    assert _loss(trainer, generated + inserted_a, mask) == _loss(trainer, generated + inserted_b, mask)
    assert _loss(trainer, generated + inserted_a, None) != _loss(trainer, generated + inserted_b, None)


def test_extra_fields_become_reward_columns_and_tool_mask_reaches_the_loss_inputs(trainer, monkeypatch):
    received: dict = {}

    def probe(completions, **columns):
        received.update(columns)
        return [0.0] * len(completions)

    n = trainer.num_generations
    tokenizer = trainer.processing_class.tokenizer
    prompt_ids = tokenizer("Is it fake?")["input_ids"]
    canned = trl.Generation(
        prompt_ids=[prompt_ids] * n, completion_ids=[[11, 12, 13]] * n, tool_mask=[[1, 0, 1]] * n,
        completions=[[{"role": "assistant", "content": "x"}]] * n, logprobs=None,
        extra_fields={"region_boxes": [[[i, i, i + 1, i + 1]] for i in range(n)]}, images=None, tool_images=[])
    monkeypatch.setattr(trainer, "_generate", lambda prompts: canned)
    monkeypatch.setattr(trainer, "reward_funcs", [probe])
    monkeypatch.setattr(trainer, "reward_func_names", ["probe"])
    monkeypatch.setattr(trainer, "reward_processing_classes", [None])
    monkeypatch.setattr(trainer, "reward_weights", torch.ones(1))
    trainer.tools = None
    inputs = [{"prompt": [{"role": "user", "content": "Is it fake?"}], "id": str(i)} for i in range(n)]
    out = GRPOTrainer._generate_and_score_completions(trainer, inputs)
    assert received["region_boxes"] == canned.extra_fields["region_boxes"] and received["id"] == ["0", "1", "2", "3"]
    assert out["tool_mask"].tolist() == canned.tool_mask

