"""Per-GPU memory for model states (parameters, gradients, optimizer states) of Qwen2.5-VL 3B/7B/32B,
full and LoRA, under DDP and DeepSpeed ZeRO-2/3, from DeepSpeed's own estimators.

    python launch/memory_table.py

Parameter counts come from the published configs' dimensions (bench/random_vlm.py), instantiated on
the meta device: nothing is downloaded or allocated. The numbers are the functions behind DeepSpeed's
``estimate_zero2_model_states_mem_needs_all_cold`` / ``estimate_zero3_model_states_mem_needs_all_cold``
(bf16 mixed precision with Adam, their 1.5x buffer factor on host memory). Activations, the
generation KV cache, vLLM and the CUDA context come on top. launch/README.md shows this output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
from transformers import AutoModelForImageTextToText

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench/
from bench.random_vlm import TEXT, qwen2_5_vl_config  # noqa: E402

GIB = 2**30
GPUS_PER_NODE = 8
LORA_RECIPE = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes/qwen2_5_vl_7b/grpo_locate_lora.yaml").read_text())
"""The LoRA rows are the shipped LoRA recipe's: its rank and target modules, read from it (PEFT matches
targets by name, in the vision tower too where the names occur)."""
LORA_RANK = LORA_RECIPE["lora_r"]
LORA_TARGETS = set(LORA_RECIPE["lora_target_modules"])


def counts(size: str) -> dict[str, int]:
    """Total parameters, the largest single module's parameters, and LoRA's trainable parameters."""
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(qwen2_5_vl_config(size))
    total = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    lora = sum(LORA_RANK * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS)
    return {"total": total, "largest": largest, "lora": lora}


def per_gpu(c: dict[str, int], lora: bool, gpus: int, stage: int, offload: bool = False) -> tuple[float, float]:
    """(GPU GiB, host GiB per node) for one GPU of ``gpus``; frozen LoRA base weights add their bf16 copy
    (replicated below ZeRO-3, sharded by it)."""
    trained = c["lora"] if lora else c["total"]
    frozen = c["total"] if lora else 0  # LoRA keeps the base weights, untrained, next to the adapters
    nodes = max(1, gpus // GPUS_PER_NODE)
    per_node = min(gpus, GPUS_PER_NODE)
    if stage == 2:
        cpu, gpu = estimate_zero2_model_states_mem_needs(trained, per_node, nodes, cpu_offload=False)
        gpu += 2 * frozen
    else:
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            trained, c["largest"], per_node, nodes, cpu_offload=offload, cpu_offload_params=offload, zero_init=True)
        gpu += 0 if offload else 2 * frozen // gpus
        cpu += 2 * frozen // nodes if offload else 0
    return gpu / GIB, cpu / GIB


def table() -> str:
    rows = [
        "| model (parameters) | trained | ZeRO-2, 8 GPUs | ZeRO-3, 8 GPUs | ZeRO-3, 16 GPUs "
        "| ZeRO-3 + offload, 8 GPUs: GPU / host RAM per node | GRPO reference model (beta > 0): ZeRO-2 / ZeRO-3, 8 GPUs |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in TEXT:
        c = counts(size)
        for lora in (False, True):
            trained = f"LoRA r{LORA_RANK} ({c['lora'] / 1e6:.0f}M)" if lora else "full"
            z2, _ = per_gpu(c, lora, 8, 2)
            z3_8, _ = per_gpu(c, lora, 8, 3)
            z3_16, _ = per_gpu(c, lora, 16, 3)
            off_gpu, off_cpu = per_gpu(c, lora, 8, 3, offload=True)
            ref = 2 * c["total"] / GIB  # bf16 and frozen: replicated below ZeRO-3, sharded by it
            # With LoRA, TRL computes reference log-probs with the adapters switched off: no second model.
            ref_cell = "none (adapters off)" if lora else f"+{ref:.1f} / +{ref / 8:.1f}"
            rows.append(f"| {size.upper()} ({c['total'] / 1e9:.2f}B) | {trained} | {z2:.1f} | {z3_8:.1f} "
                        f"| {z3_16:.1f} | {off_gpu:.1f} / {off_cpu:.0f} | {ref_cell} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
