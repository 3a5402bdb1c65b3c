"""TRL's vLLM colocate path, for real: rollouts come from the context that is trained.

Each test builds a GRPO stage with ``use_vllm: true`` exactly as ``zoomin grpo`` does
(:func:`rl.grpo.build`), watches what reaches the engine (by wrapping the engine's own
``generate``, which still runs) and what TRL trains, and runs two steps. The on-policy tests run on
every model of the conftest's ``on_policy`` fixture: `small`, and random-weight models with the
released Qwen2.5-VL and Qwen3-VL processors, whose image-token counts and templates are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from trl.data_utils import prepare_multimodal_messages

from rl import grpo
from rl.trainer import ZoomInGRPOTrainer
from rl.vllm import engine_prompt_ids, trl_sends_unexpanded_ids
from zoomin.special_tokens import vision_token_ids

if TYPE_CHECKING:
    from conftest import OnPolicyCase

STEPS = 2
COLOCATE = ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.5",
            "--vllm_max_model_length", "2048"]


class Watch:
    """What one trainer sent to its engine, what the engine saw and sampled, and what was trained."""

    def __init__(self, trainer: ZoomInGRPOTrainer, weight: str = "layers.0.mlp.down_proj.weight"):
        self.trainer, self.engine_calls, self.trained = trainer, [], []
        llm = trainer.vllm_generation.llm
        engine_model = llm.llm_engine.model_executor.driver_worker.model_runner.model
        self.engine_weight = next(p for n, p in engine_model.named_parameters() if n.endswith(weight))
        self.policy_weight = next(p for n, p in trainer.model.named_parameters() if n.endswith(weight))
        # the class's own method: the engine may be shared with an earlier test's trainer (conftest)
        generate, train_generate = type(llm).generate.__get__(llm), trainer._generate

        def watched_engine(prompts, *args, **kwargs):
            outputs = generate(prompts, *args, **kwargs)
            self.engine_calls.append({
                "step": trainer.state.global_step,
                "sent": [p["prompt_token_ids"] for p in prompts],
                "seen": [list(o.prompt_token_ids) for o in outputs],
                "sampled": [list(c.token_ids) for o in outputs for c in o.outputs],
                "engine_weight": self.engine_weight.detach().clone(),
                "policy_weight": self.policy_weight.detach().clone(),
            })
            return outputs

        def watched_trainer(prompts):
            result = train_generate(prompts)
            self.trained.append(result)
            return result

        llm.generate, trainer._generate = watched_engine, watched_trainer

    def logged(self, key: str) -> list[float]:
        return [h[key] for h in self.trainer.state.log_history if key in h]


def _build(model: Path, data: Path, out: Path, stage: str, *extra: str) -> Watch:
    argv = ["--model_name_or_path", str(model), "--train_data", str(data), "--output_dir", str(out),
            "--stage", stage, "--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false",
            "--report_to", "none", "--logging_steps", "1", "--save_strategy", "no", "--seed", "0",
            "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_records", "8",
            "--max_completion_length", "24", "--learning_rate", "1e-3", "--max_steps", str(STEPS),
            "--rewards", "signals.shorter", *COLOCATE, *extra]
    trainer, _, _ = grpo.build(argv)
    assert isinstance(trainer, ZoomInGRPOTrainer) and trainer.collapse_image_runs
    return Watch(trainer)


def _check_on_policy_and_synced(watch: Watch, contexts: list[list[list[int]]]) -> None:
    """The engine saw, token for token, the contexts that were trained; the first step's importance
    ratio is close to 1; the second step's rollouts came from the updated weights; no vision token."""
    calls = watch.engine_calls
    assert len(calls) == len(contexts)
    pad = watch.trainer.processing_class.image_token_id
    for call, trained in zip(calls, contexts):
        assert call["seen"] == trained  # same length and same ids: one expansion per image
        assert all(ids.count(pad) < len(t) and any(x == pad for x in t) for ids, t in zip(call["sent"], trained))
        assert call["sent"] == engine_prompt_ids(trained, pad)

    ratio, logp_gap = watch.logged("sampling/importance_sampling_ratio/mean"), watch.logged(
        "sampling/sampling_logp_difference/mean")
    assert len(ratio) == STEPS and 0.8 < ratio[0] < 1.25 and logp_gap[0] < 0.02, (ratio, logp_gap)

    first, last = calls[0], calls[-1]
    assert first["step"] == 0 and last["step"] == STEPS - 1
    assert not torch.equal(last["engine_weight"], first["engine_weight"])  # the step changed the weights...
    engine = last["engine_weight"]  # ...and the engine got them (in its own dtype: bfloat16 on the CPU)
    assert torch.equal(engine, last["policy_weight"].to(engine.dtype))

    banned = set(vision_token_ids(watch.trainer.model.config))
    assert not banned & {t for call in calls for ids in call["sampled"] for t in ids}


def test_locate_stage_rolls_out_from_the_trained_prompt(on_policy: OnPolicyCase, tmp_path: Path) -> None:
    watch = _build(on_policy.model, on_policy.data, tmp_path / "locate", "locate")
    watch.trainer.train()
    # one engine call per step; the trained prompts are TRL's own (processor-expanded) prompt ids
    contexts = [result[0] for result in watch.trained]
    _check_on_policy_and_synced(watch, contexts)
    if on_policy.image_tokens is not None:  # both image sizes ran, each expanded under the saved budget
        pad = watch.trainer.processing_class.image_token_id
        assert {ids.count(pad) for step in contexts for ids in step} == on_policy.image_tokens


def test_joint_stage_rolls_out_both_turns_from_the_trained_context(
    on_policy: OnPolicyCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random model names no boxes, so the *text* of each locate answer is scripted to name two
    (its token ids stay the model's own, as sampled); crops, the inserted turn and the examine
    rollout are the real path. The boxes lie inside the smallest model frame of any case (56 pixels:
    Qwen2.5-VL's frame of a 40 x 40 image), so every image gets both crops whatever its family."""
    from trl import GRPOTrainer

    from zoomin.protocol import ProtocolConfig

    answer = ProtocolConfig().render_locate("Region 1: smear.", [[4, 4, 28, 28], [24, 20, 52, 54]], "fake")
    generate = GRPOTrainer._generate

    def scripted(self, prompts):
        out = list(generate(self, prompts))
        out[3] = [[{"role": "assistant", "content": answer}] for _ in out[3]]
        return tuple(out)

    monkeypatch.setattr(GRPOTrainer, "_generate", scripted)
    watch = _build(on_policy.model, on_policy.data, tmp_path / "joint", "joint", "--protocol",
                   json.dumps({"examine_in_context": True}))
    watch.trainer.train()
    contexts = []
    for prompt_ids, completion_ids, tool_mask, *_ in watch.trained:
        contexts.append(prompt_ids)  # turn 1: query 1
        # turn 2: query 1, the locate answer and the inserted crop turn (the tool_mask's zeros)
        starts = [next(i for i in range(m.index(0), len(m)) if m[i] == 1) if 0 in m else len(m) for m in tool_mask]
        contexts.append([p + c[:s] for p, c, s in zip(prompt_ids, completion_ids, starts)])
    calls = watch.engine_calls
    pad = watch.trainer.processing_class.image_token_id
    crops = [ids.count(pad) > p.count(pad) for ids, p in zip(contexts[1], contexts[0])]
    assert all(crops), "a rollout made no crop: the inserted-image path was not exercised"
    steps = [c["step"] for c in calls]
    assert steps == sorted(steps) and len(calls) == 2 * STEPS
    _check_on_policy_and_synced(watch, contexts)


def test_the_collapse_steps_aside_once_trl_sends_unexpanded_ids():
    assert not trl_sends_unexpanded_ids()  # TRL 1.16, what the project pins

    class Fixed(ZoomInGRPOTrainer):  # the signature TRL's fix (PR 6718) gives the method
        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False, vllm_prompt_ids=None):
            raise NotImplementedError

    assert trl_sends_unexpanded_ids(Fixed)


STAGES = {
    "locate": ["--stage", "locate"],
    "examine": ["--stage", "examine"],
    "examine-policy-crops": ["--stage", "examine", "--crop_source", "policy"],
    "examine-locator-crops": ["--stage", "examine", "--crop_source", "locator"],
    "joint": ["--stage", "joint", "--protocol", json.dumps({"examine_in_context": True})],
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_builds_and_steps_with_vllm(stage, small_vlm, small_locator, train_data, tmp_path):
    """Construction used to fail in every stage (TRL makes ``generation_config`` for HF generation
    only); each stage now builds, bans the vision tokens in vLLM's sampling parameters and trains a step."""
    extra = ["--locator_checkpoint", str(small_locator)] if stage == "examine-locator-crops" else []
    trainer, _, _ = grpo.build(["--model_name_or_path", str(small_vlm), "--train_data", str(train_data),
                                "--output_dir", str(tmp_path), *STAGES[stage], *extra, "--attn_implementation",
                                "eager", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
                                "--save_strategy", "no", "--per_device_train_batch_size", "4", "--num_generations",
                                "4", "--max_records", "4", "--max_completion_length", "8", "--max_steps", "1",
                                *COLOCATE])
    tokenizer = trainer.processing_class.tokenizer
    banned = tokenizer.convert_ids_to_tokens(vision_token_ids(trainer.model.config))
    assert set(banned) <= set(trainer.vllm_generation.generation_kwargs["bad_words"])
    trainer.train()
    assert trainer.state.global_step == 1


def test_vision_tokens_are_never_sampled_even_when_favoured(on_policy: OnPolicyCase, tmp_path: Path) -> None:
    """With a logit bias of +100 on every vision token, the trainer's sampling parameters still
    never sample one; the same call without their ``bad_words`` samples nothing else."""
    from vllm import SamplingParams

    watch = _build(on_policy.model, on_policy.data, tmp_path, "locate")
    trainer = watch.trainer
    vision = vision_token_ids(trainer.model.config)
    image = trainer.train_dataset[0]["images"][0]
    prompt = prepare_multimodal_messages(trainer.protocol.locate_messages(), images=[image])
    prompt_ids, _, _ = trainer._tokenize_prompts([prompt])
    request = {"prompt_token_ids": engine_prompt_ids(prompt_ids, trainer.processing_class.image_token_id)[0],
               "multi_modal_data": {"image": image}}
    guarded = dict(trainer.vllm_generation.generation_kwargs)
    sampled = {}
    for name, kwargs in {"guarded": guarded, "unguarded": {k: v for k, v in guarded.items() if k != "bad_words"}}.items():
        params = SamplingParams(max_tokens=8, temperature=1.0, logit_bias=dict.fromkeys(vision, 100.0), seed=0, **kwargs)
        (output,) = type(trainer.vllm_generation.llm).generate(trainer.vllm_generation.llm, [request], params,
                                                                use_tqdm=False)
        sampled[name] = list(output.outputs[0].token_ids)
    assert sampled["unguarded"] and set(sampled["unguarded"]) <= set(vision)
    assert sampled["guarded"] and not set(sampled["guarded"]) & set(vision)
