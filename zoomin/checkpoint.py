"""The ZoomIn checkpoint format: a plain transformers model folder plus ``zoomin.json``.

Anyone can load the folder as the base architecture (safetensors weights, config, processor files);
``zoomin.json`` adds what the weights alone do not say: the protocol the model was trained with
(prompts, tags, label words, crop policy, box codec), the generation settings of both queries, and
its lineage: the model training started from and every stage since (what a model card and the
Hub's model tree need, and what a local folder name of the last stage cannot tell). A checkpoint
that lost its protocol would be served different prompts or crops than it learned on, and nothing
would fail loudly, so reading it is strict: a missing file, an unknown schema version or an unknown
key is an error that says which. Version 1 files (no lineage) are still read.

Writing is atomic: a checkpoint is built in a hidden sibling folder and renamed into place only
once complete, so an interrupted export never leaves a folder that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from zoomin.codecs import check_family
from zoomin.protocol import ProtocolConfig

ZOOMIN_FILE = "zoomin.json"
SCHEMA_VERSION = 2
STAGES = ("locate", "examine")
DEFAULT_GENERATION: dict[str, dict] = {
    "locate": {"max_new_tokens": 128, "do_sample": False},
    "examine": {"max_new_tokens": 320, "do_sample": False},
}
"""Greedy decoding, so a checkpoint gives the same answer twice. The budgets hold every
MagniFake-mini answer in the small models' 1k-token vocabulary (a three-region explanation runs
to ~260 tokens); a cut answer has no verdict and counts as a format error."""
_KEYS = {
    1: {"schema_version", "protocol", "generation", "base_model", "family"},
    2: {"schema_version", "protocol", "generation", "base_model", "base_model_local", "family", "stages"},
}
"""The keys each readable schema version may hold."""


class CheckpointError(ValueError):
    """A folder that is not a usable ZoomIn checkpoint, with the reason."""


@dataclass(frozen=True)
class StageRecord:
    """One training stage in a checkpoint's lineage.

    ``recipe`` and ``data`` are the paths as given on that stage's command line (a recipe is
    optional); ``records`` is how many training records the stage used after bad ones were skipped;
    ``started`` and ``ended`` are ISO 8601 times in UTC (for an intermediate checkpoint, ``ended`` is
    when its weights were saved).
    """

    stage: str
    recipe: str | None
    data: str
    records: int
    started: str
    ended: str

    def __post_init__(self) -> None:
        for name in ("stage", "data", "started", "ended"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise CheckpointError(f"stage record field {name!r} must be a non-empty string, got {value!r}")
        if self.recipe is not None and not isinstance(self.recipe, str):
            raise CheckpointError(f"stage record field 'recipe' must be a string or null, got {self.recipe!r}")
        if not isinstance(self.records, int) or isinstance(self.records, bool) or self.records < 0:
            raise CheckpointError(f"stage record field 'records' must be a count, got {self.records!r}")
        for name in ("started", "ended"):
            try:
                datetime.fromisoformat(getattr(self, name))
            except ValueError:
                raise CheckpointError(
                    f"stage record field {name!r} is not an ISO 8601 time: {getattr(self, name)!r}") from None

    @classmethod
    def from_dict(cls, d: object) -> StageRecord:
        if not isinstance(d, dict):
            raise CheckpointError(f"a stage record must be an object, got {d!r:.80}")
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise CheckpointError(f"stage record {d.get('stage', '?')!r}: unknown keys {sorted(set(d) - names)}, "
                                  f"missing keys {sorted(names - set(d))}")
        return cls(**d)


@dataclass
class CheckpointInfo:
    """The content of ``zoomin.json``.

    ``generation`` maps each query (``locate``, ``examine``) to ``model.generate`` keyword arguments;
    settings left out take the defaults, so the stored file always holds the full settings used.
    ``family`` defaults to the protocol codec's family and must agree with it.

    ``base_model`` is the model the first training stage started from: a Hub id, or, with
    ``base_model_local``, a local folder's path as given (a model built on the spot, such as the
    demo's random-weight one, has no Hub id). ``stages`` lists every training stage since, oldest
    first; each stage appends itself to what the model it started from carried.
    """

    protocol: ProtocolConfig
    generation: dict[str, dict] = field(default_factory=lambda: {s: dict(g) for s, g in DEFAULT_GENERATION.items()})
    base_model: str | None = None
    family: str | None = None
    base_model_local: bool = False
    stages: list[StageRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = self.protocol.codec.family
        check_family(self.family)
        if self.family != self.protocol.codec.family:
            raise CheckpointError(
                f"family {self.family!r} disagrees with the protocol's box codec family "
                f"{self.protocol.codec.family!r}: boxes would be decoded in the wrong coordinates"
            )
        if not isinstance(self.generation, dict) or set(self.generation) - set(STAGES):
            raise CheckpointError(f"generation must map {list(STAGES)} to generate() settings, got {self.generation!r:.120}")
        merged = {}
        for stage in STAGES:
            settings = self.generation.get(stage, {})
            if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
                raise CheckpointError(f"generation[{stage!r}] must be a dict of generate() settings, got {settings!r:.120}")
            merged[stage] = {**DEFAULT_GENERATION[stage], **settings}
        self.generation = merged
        if self.base_model is not None and not isinstance(self.base_model, str):
            raise CheckpointError(f"base_model must be a model id or path, got {self.base_model!r:.80}")
        if not isinstance(self.base_model_local, bool):
            raise CheckpointError(f"base_model_local must be true or false, got {self.base_model_local!r}")
        if not isinstance(self.stages, list):
            raise CheckpointError(f"stages must be a list of stage records, got {self.stages!r:.80}")
        self.stages = [s if isinstance(s, StageRecord) else StageRecord.from_dict(s) for s in self.stages]

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "protocol": self.protocol.to_dict(),
            "generation": self.generation,
            "base_model": self.base_model,
            "base_model_local": self.base_model_local,
            "family": self.family,
            "stages": [asdict(s) for s in self.stages],
        }

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / ZOOMIN_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> CheckpointInfo:
        path = Path(directory) / ZOOMIN_FILE
        if not Path(directory).is_dir():
            raise CheckpointError(f"checkpoint folder not found: {directory}")
        if not path.is_file():
            raise CheckpointError(
                f"{directory} is not a ZoomIn checkpoint: it has no {ZOOMIN_FILE} (a plain model folder "
                "does not say which prompts, crops and box coordinates it was trained with)"
            )
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise CheckpointError(f"{path} must hold a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if version not in _KEYS or isinstance(version, bool):
            raise CheckpointError(f"{path} has schema_version {version!r}; this code reads versions {sorted(_KEYS)}")
        unknown = sorted(set(d) - _KEYS[version])
        if unknown:
            raise CheckpointError(f"{path} has unknown keys {unknown}; known keys: {sorted(_KEYS[version])}")
        if not isinstance(d.get("protocol"), dict):
            raise CheckpointError(f"{path} has no 'protocol' object")
        base_model = d.get("base_model")
        try:
            return cls(
                protocol=ProtocolConfig.from_dict(d["protocol"]),
                generation=d.get("generation", {}),
                base_model=base_model,
                family=d.get("family"),
                # Version 1 kept the path or id the last stage started from, and no lineage.
                base_model_local=d.get("base_model_local", version == 1 and _looks_local(base_model)),
                stages=d.get("stages", []),
            )
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: {e}") from None


def _looks_local(name: object) -> bool:
    """Whether a version-1 ``base_model`` names a local folder rather than a Hub model id."""
    if not isinstance(name, str):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return Path(name).exists()


def checkpoint_problems(directory: str | os.PathLike) -> list[str]:
    """What keeps ``directory`` from being a complete checkpoint (empty when it is one)."""
    d = Path(directory)
    if not d.is_dir():
        return [f"{d} is not a folder"]
    problems = []
    names = {p.name for p in d.iterdir()}
    if "config.json" not in names:
        problems.append("no config.json")
    index = d / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        problems += [f"weight shard {s} listed in the index is missing" for s in sorted(shards - names)]
    elif not any(n.endswith(".safetensors") for n in names):
        problems.append("no safetensors weights")
    if any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in names):
        problems.append("pickled weights (.bin/.pt) present: checkpoints hold safetensors only")
    if not names & {"tokenizer.json", "tokenizer_config.json"}:
        problems.append("no tokenizer files")
    if not names & {"processor_config.json", "preprocessor_config.json"}:
        problems.append("no processor files (processor_config.json or preprocessor_config.json)")
    try:
        CheckpointInfo.load(d)
    except CheckpointError as e:
        problems.append(str(e))
    return problems


def is_complete_checkpoint(directory: str | os.PathLike) -> bool:
    return not checkpoint_problems(directory)


def write_checkpoint_atomically(
    out_dir: str | os.PathLike, writer: Callable[[Path], None], *, overwrite: bool = False
) -> Path:
    """Run ``writer(tmp_dir)`` in a hidden sibling folder, check the result, rename it to ``out_dir``.

    If the writer raises (or the process is interrupted) the temporary folder is removed and
    ``out_dir`` is untouched; a hard kill leaves only a hidden ``.NAME.tmp-*`` folder, never a
    folder that looks complete. An existing non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    old = out.parent / f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
    try:
        writer(tmp)
        problems = checkpoint_problems(tmp)
        if problems:
            raise CheckpointError(f"the checkpoint written for {out} is incomplete: {'; '.join(problems)}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)  # put the previous checkpoint back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out
