"""Run configurations: TRL's ``SFTConfig`` / ``GRPOConfig`` extended with ZoomIn's data, protocol
and stage arguments, parsed by TRL's own parser (YAML defaults, ``--key value`` overrides, unknown
keys are an error).

Everything a recipe can get wrong is checked by :func:`check_sft` / :func:`check_grpo` *before*
any model weights load, so a typo costs a second, not a queue slot on a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import GRPOConfig, ModelConfig, SFTConfig, TrlParser

from zoomin.checkpoint import ZOOMIN_FILE, CheckpointInfo
from zoomin.codecs import FAMILIES
from zoomin.formats import GRPO_STAGES

CROP_SOURCES = ("annotations", "locator", "policy")


class RecipeError(ValueError):
    """A recipe or command-line mistake, reported before anything heavy loads."""


@dataclass
class DataArguments:
    """Where the MagniFake records come from (mixed into every stage's config)."""

    train_data: str | None = field(
        default=None, metadata={"help": "MagniFake training data: a .jsonl file or a saved `datasets` folder."}
    )
    eval_data: str | None = field(default=None, metadata={"help": "Optional MagniFake evaluation data."})
    image_root: str | None = field(
        default=None, metadata={"help": "Root for relative image paths (default: the data file's folder)."}
    )
    strict_data: bool = field(
        default=False, metadata={"help": "Stop on the first bad record instead of skipping and reporting it."}
    )
    max_records: int | None = field(default=None, metadata={"help": "Use at most this many training records."})
    max_eval_records: int | None = field(
        default=None,
        metadata={"help": "Use at most this many evaluation records (the first ones): evaluating during GRPO "
                          "generates for every one of them."},
    )


@dataclass
class ZoomInArguments(DataArguments):
    """Arguments shared by the SFT and GRPO stages."""

    protocol: dict | str | None = field(
        default=None,
        metadata={"help": "Protocol overrides (tags, label words, prompts, crop policy, pixel budget) as a mapping, a "
                          "JSON string or a .json file. Of the box codec only the pixel budget can be set "
                          "(codec: {min_pixels, max_pixels}); a later stage inherits it from its checkpoint."},
    )
    freeze_vision: bool = field(
        default=False, metadata={"help": "Freeze the vision tower (and its merger); train the language model only."}
    )


@dataclass
class ZoomInSFTConfig(SFTConfig, ZoomInArguments):
    """SFT warm start on both queries' targets."""

    locate_repeats: int = field(
        default=1,
        metadata={"help": "How many times each record's locate example appears per epoch (its examine example "
                          "appears once). Raise it when boxes are learnt more slowly than verdicts, as from scratch."},
    )
    report_to: None | str | list[str] = field(default="tensorboard", metadata={"help": "Where to log (TensorBoard by default)."})
    activation_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory; worth it from ~3B parameters up."}
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Kept False: the SFT rows carry where their images come from, and the images are "
                          "attached when a row is read (zoomin.formats.sft_dataset)."},
    )


@dataclass
class ZoomInGRPOConfig(GRPOConfig, ZoomInArguments):
    """GRPO on one stage of the protocol."""

    stage: str = field(default="locate", metadata={"help": f"GRPO stage: {' | '.join(GRPO_STAGES)}."})
    rewards: list[str] | None = field(
        default=None,
        metadata={"help": "Reward terms by registry name or dotted path (default: the stage's default set). "
                          "Weights go in `reward_weights`, in the same order."},
    )
    reward_params: dict | str | None = field(
        default=None, metadata={"help": "Per-term parameters: {name: {param: value}} (mapping or JSON string)."}
    )
    crop_source: str = field(
        default="annotations",
        metadata={"help": "Where examine-stage crops come from: annotations (the dataset's boxes), locator (a "
                          "frozen checkpoint's query-1 boxes) or policy (the model being trained)."},
    )
    locator_checkpoint: str | None = field(
        default=None, metadata={"help": "Checkpoint that locates regions when crop_source=locator."}
    )
    report_to: None | str | list[str] = field(default="tensorboard", metadata={"help": "Where to log (TensorBoard by default)."})
    activation_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory; worth it from ~3B parameters up."}
    )


def parse(config_cls: type, argv: list[str] | None) -> tuple[Any, ModelConfig]:
    """Parse ``--config recipe.yaml`` plus command-line overrides into (run config, model config)."""
    parser = TrlParser((config_cls, ModelConfig))
    try:
        run, model = parser.parse_args_and_config(argv)
    except ValueError as e:  # TRL reports unknown YAML keys this way
        raise RecipeError(str(e)) from None
    return run, model


def load_mapping(value: dict | str | None, what: str) -> dict:
    """A mapping given inline, as a JSON string or as a .json file path."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    path = Path(value)
    text = path.read_text() if path.suffix == ".json" and path.is_file() else value
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"{what}: not a mapping, JSON string or .json file: {value!r} ({e.msg})") from None
    if not isinstance(loaded, dict):
        raise RecipeError(f"{what} must be a mapping, got {type(loaded).__name__}")
    return loaded


def model_family(model_name_or_path: str | None) -> str:
    """The box-codec family of a model, read from its config alone (no weights)."""
    from transformers import AutoConfig

    if not model_name_or_path:
        raise RecipeError("model_name_or_path is required")
    try:
        model_type = AutoConfig.from_pretrained(model_name_or_path).model_type
    except (OSError, ValueError) as e:
        raise RecipeError(f"cannot read the model config of {model_name_or_path!r}: {e}") from None
    if model_type not in FAMILIES:
        raise RecipeError(f"model type {model_type!r} has no box codec; supported families: {', '.join(FAMILIES)}")
    return model_type


def check_data(run: DataArguments) -> None:
    """The data paths a recipe names exist."""
    if not run.train_data:
        raise RecipeError("train_data is required")
    for name in ("train_data", "eval_data", "image_root"):
        value = getattr(run, name)
        if value and not Path(value).exists():
            raise RecipeError(f"{name}: no such file or folder: {value}")


def check_common(run: ZoomInArguments, model: ModelConfig) -> str:
    """Checks shared by the SFT and GRPO stages; returns the model family."""
    check_data(run)
    load_mapping(run.protocol, "protocol")
    return model_family(model.model_name_or_path)


def check_grpo(run: ZoomInGRPOConfig, model: ModelConfig) -> str:
    """Everything about a GRPO recipe that can be checked without loading weights."""
    from rewards.registry import DEFAULT_REWARDS, build_rewards

    family = check_common(run, model)
    if run.stage not in GRPO_STAGES:
        raise RecipeError(f"unknown stage {run.stage!r}; stages: {', '.join(GRPO_STAGES)}")
    if run.crop_source not in CROP_SOURCES:
        raise RecipeError(f"unknown crop_source {run.crop_source!r}; choose one of {', '.join(CROP_SOURCES)}")
    if run.stage == "examine" and run.crop_source == "locator" and not run.locator_checkpoint:
        raise RecipeError("stage examine with crop_source=locator needs locator_checkpoint")
    if run.locator_checkpoint and not Path(run.locator_checkpoint).is_dir():
        raise RecipeError(f"locator_checkpoint: no such folder: {run.locator_checkpoint}")
    if run.eval_strategy != "no" and not run.eval_data:
        raise RecipeError(f"eval_strategy {run.eval_strategy} needs eval_data: the records whose prompts are "
                          "scored with the stage's rewards")
    if run.stage == "joint" and not _examine_in_context(run, model):
        raise RecipeError("stage joint runs query 2 as a follow-up turn: set protocol.examine_in_context: true "
                          "(and warm-start with SFT under the same protocol)")
    names = run.rewards or DEFAULT_REWARDS[run.stage]
    try:
        build_rewards(names, run.reward_weights, params=load_mapping(run.reward_params, "reward_params"))
    except (ValueError, ImportError) as e:
        raise RecipeError(str(e)) from None
    return family


def _examine_in_context(run: ZoomInGRPOConfig, model: ModelConfig) -> bool:
    """The protocol's ``examine_in_context``: the recipe's value, else the one saved with the model."""
    overrides = load_mapping(run.protocol, "protocol")
    if "examine_in_context" in overrides:
        return bool(overrides["examine_in_context"])
    return bool(saved_protocol(model.model_name_or_path).get("examine_in_context"))


def saved_protocol(model_dir: str | None) -> dict:
    """The protocol fields a ZoomIn checkpoint was trained with (its ``zoomin.json``, checked), or {} for
    a model without one: the one reader of what a stage inherits."""
    if not model_dir or not (Path(model_dir) / ZOOMIN_FILE).is_file():
        return {}
    fields = CheckpointInfo.load(model_dir).protocol.to_dict()
    fields.pop("schema_version")
    return fields
