"""``zoomin sft``: supervised warm start on both queries' targets with TRL's SFTTrainer.

    zoomin sft --config recipes/tiny/sft.yaml [--key value ...]
"""

from __future__ import annotations

from trl import SFTTrainer, get_peft_config

from rl.checkpoints import CompletionMarker, resolve_resume
from rl.config import ZoomInSFTConfig, check_common, parse
from rl.distributed import prepare_distributed
from rl.modeling import build_protocol, load_model, load_processor, load_training_records
from rl.outputs import InfoWriter, finish, record_recipe
from rl.preflight import check_stage
from zoomin.formats import sft_dataset


def main(argv: list[str] | None = None) -> SFTTrainer:
    run, model_args = parse(ZoomInSFTConfig, prepare_distributed(argv))
    family = check_common(run, model_args)
    record_recipe("sft", argv, run.output_dir)

    processor = load_processor(model_args.model_name_or_path)
    protocol = build_protocol(family, processor, run.protocol, model_args.model_name_or_path)
    records = load_training_records(run, run.output_dir)
    found = check_stage("sft", run, model_args.model_name_or_path, protocol, processor, records)
    train = sft_dataset(records, protocol, run.locate_repeats)
    write_info = InfoWriter(protocol, family, model_args.model_name_or_path, "sft", argv, run.train_data,
                            len(records), budgets=found.answer_budgets)

    trainer = SFTTrainer(
        model=load_model(model_args, run.freeze_vision),
        args=run,
        train_dataset=train,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        callbacks=[CompletionMarker(write_info)],
    )
    trainer.train(resume_from_checkpoint=resolve_resume(run.resume_from_checkpoint, run.output_dir))
    finish(trainer, write_info, f"SFT {model_args.model_name_or_path}")
    return trainer
