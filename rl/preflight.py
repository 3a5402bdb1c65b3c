"""The pre-flight of a training stage: what its recipe, data and pixel budget need, before weights load.

    zoomin check --config RECIPE [--key value ...]      # exit 0: it can run; 1: every problem named;
                                                        # 2: a recipe or command line it cannot read

A real run crosses boundaries the toy path never does: a released processor lets one photograph
cost 16,384 image tokens, so a ``max_length`` or ``vllm_max_model_length`` that looked generous cuts
image tokens (TRL stops at step 0, or hours in at the first large image) or refuses rollouts. From
the codec's pixel budget, the crop policy and the data's image sizes this module computes each
query's longest prompt and answer, exactly for what the data fixes (the global view, annotated
crops, reference answers) and as a bound for what rollouts decide (the policy's crops, sampled
answers up to ``max_completion_length``), and names every setting that cannot hold them with the
number needed. It also reports the zoom the crop policy gives on the data's boxes
(:func:`zoomin.zoom.zoom_factor`) and warns below 1x. ``zoomin check`` and the start of every stage
run the same :func:`preflight`; a stage refuses to start on any problem.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zoomin.checkpoint import DEFAULT_GENERATION
from zoomin.data import Record
from zoomin.formats import reference_answers
from zoomin.protocol import ProtocolConfig
from zoomin.zoom import crop_size, crop_window, max_crop_tokens, zoom_factor

logger = logging.getLogger(__name__)

ZOOM_OUT_SHARE = 0.1
"""The pre-flight warns when more than this share of the data's boxes would be zoomed out: a few
regions larger than a crop's token cap are expected, most are not."""


@dataclass
class Findings:
    """What a pre-flight found: problems stop a run, warnings do not, facts are what was measured."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    answer_budgets: dict[str, int] = field(default_factory=dict)
    """SFT: per query, a ``max_new_tokens`` that holds every reference answer it teaches (the longest plus
    the end-of-turn token, rounded up to 64 and never below the default), what its checkpoint serves with."""

    def lines(self) -> list[str]:
        facts = [f"{k}: {v}" for k, v in self.facts.items()]
        return facts + [f"warning: {w}" for w in self.warnings] + [f"problem: {p}" for p in self.problems]


class Lengths:
    """Token counts of the two queries for one protocol and processor.

    Text is rendered by the processor's own chat template with one placeholder per image; each image
    then adds its token count under the codec's budget minus that placeholder. Answers are tokenized
    alone and added to the rendered conversation with an empty answer, so each record costs one
    tokenizer call, not a template rendering.
    """

    def __init__(self, protocol: ProtocolConfig, processor: Any):
        self.protocol, self.processor = protocol, processor
        self.codec = protocol.codec
        self.crop_bound = max_crop_tokens(protocol)
        self.widest_region = [self.codec.max_coordinate] * 4  # region lines at their widest: text is a bound
        self._text: dict[tuple[str, int, bool], int] = {}

    def text(self, query: str, regions: int, answered: bool) -> int:
        """Template tokens of ``query`` with ``regions`` crops (placeholders included), with an empty
        answer turn when ``answered`` (SFT's conversation), else with the generation prompt."""
        key = (query, regions, answered)
        if key not in self._text:
            p = self.protocol
            messages = (p.locate_messages() if query == "locate"
                        else p.examine_messages([self.widest_region] * regions, "" if p.examine_in_context else None))
            if answered:
                messages = [*messages, {"role": "assistant", "content": [{"type": "text", "text": ""}]}]
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=not answered)
            self._text[key] = len(self.processor.tokenizer(text)["input_ids"])
        return self._text[key]

    def crops(self, record: Record, bound: bool = False) -> tuple[int, int]:
        """``(image tokens, count)`` of the crops query 2 shows for ``record``: of its annotated boxes, or
        with ``bound`` (crops the policy chooses at rollout time) ``max_crops`` crops at the policy's most."""
        if bound:
            return self.protocol.crop.max_crops * self.crop_bound, self.protocol.crop.max_crops
        shapes = [_crop_shape(crop_window(b, record.image_size, self.protocol.crop), self.protocol)
                  for b in record.boxes[: self.protocol.crop.max_crops]]
        return sum(self.codec.image_tokens(s) for s in shapes), len(shapes)

    def prompt(self, record: Record, query: str, bound: bool = False, answered: bool = False) -> int:
        """Tokens of ``query``'s prompt for ``record``, images expanded (and an empty answer turn when
        ``answered``). In context, query 2's prompt holds query 1's, without its answer."""
        tokens, regions = self.crops(record, bound) if query == "examine" else (0, 0)
        images = 1 + regions
        return self.text(query, regions, answered) - images + self.codec.image_tokens(record.image_size) + tokens

    def answer_tokens(self, records: Sequence[Record]) -> dict[str, list[int]]:
        """Tokens of each record's reference answer, by query."""
        answers = [reference_answers(r, self.protocol) for r in records]
        tok = self.processor.tokenizer
        return {q: [len(ids) for ids in tok([a[q] for a in answers])["input_ids"]] for q in ("locate", "examine")}


def _crop_shape(window: Sequence[int], protocol: ProtocolConfig) -> tuple[int, int]:
    return crop_size((window[2] - window[0], window[3] - window[1]), protocol.crop)


def sft_lengths(records: Sequence[Record], lengths: Lengths, answers: dict[str, list[int]]) -> dict[str, tuple[int, str]]:
    """The longest SFT example of each query (prompt, images and ``answers``' tokens), with its record."""
    in_context = lengths.protocol.examine_in_context
    longest: dict[str, tuple[int, str]] = {}
    for i, record in enumerate(records):
        for query in ("locate", "examine"):
            total = lengths.prompt(record, query, answered=True) + answers[query][i]
            if query == "examine" and in_context:
                total += answers["locate"][i]
            longest[query] = max(longest.get(query, (0, "")), (total, record.id))
    return longest


def rollout_lengths(records: Sequence[Record], lengths: Lengths, stage: str, crop_source: str,
                    completion: int) -> tuple[int, str]:
    """The longest context of a GRPO stage's rollouts (prompts, images and answers) and its record.

    The global view and annotated crops are fixed by the data; crops the data does not fix (crop_source
    policy or locator, the joint stage) count at the crop policy's bound, ``max_crops`` of them; every generated
    answer counts at ``completion`` tokens (``max_completion_length``), query 1's too where query 2
    follows it in context.
    """
    policy = stage == "joint" or crop_source in ("policy", "locator")  # crops not fixed by the annotations
    in_context = lengths.protocol.examine_in_context
    worst = (0, "")
    for record in records:
        if stage == "locate":
            total = lengths.prompt(record, "locate") + completion
        else:  # examine and joint: query 2's prompt plus its answer, query 1's answer inside it in context
            total = lengths.prompt(record, "examine", bound=policy) + completion * (2 if in_context else 1)
            if policy and not in_context:  # query 1 is generated too, in its own conversation
                total = max(total, lengths.prompt(record, "locate") + completion)
        worst = max(worst, (total, record.id))
    return worst


def budget_cuts(records: Sequence[Record], stage: str, crop_source: str, protocol: ProtocolConfig, tokenizer: Any,
                budget: int) -> str | None:
    """Why ``max_completion_length`` (``budget``) is too short for this stage's answers, or None.

    The reference answers the SFT warm start taught are the measure: a rollout cut at the budget
    loses its closing tags (format 0) and whatever came after the cut (boxes, verdict), so the stage
    would reward short answers rather than right ones. Query 1 runs under the same budget when the
    examine stage takes the policy's crops, and in the joint stage.
    """
    answers = [reference_answers(r, protocol) for r in records]
    queries = {"locate": ["locate"], "examine": ["examine"] + (["locate"] if crop_source == "policy" else []),
               "joint": ["locate", "examine"]}[stage]
    cut, longest = 0, (0, "", "")
    for query in queries:
        counts = [len(ids) + 1 for ids in tokenizer([a[query] for a in answers])["input_ids"]]  # + end of turn
        cut += sum(n > budget for n in counts)
        longest = max(longest, *((n, r.id, query) for n, r in zip(counts, records)))
    if not cut:
        return None
    n, record_id, query = longest
    return (f"max_completion_length {budget} cuts {cut} reference answers of {len(records)} records (the longest, "
            f"the {query} answer of record {record_id}, is {n} tokens): cut rollouts lose their closing tags and "
            f"what follows, so the rewards would favour short answers; raise max_completion_length to {n} or more")


def zoom_facts(records: Sequence[Record], protocol: ProtocolConfig) -> tuple[dict[str, Any], str | None]:
    """Image tokens per image and the zoom factor on the records' annotated boxes, and a warning when
    the crop policy shows most regions with less detail than the global view."""
    codec = protocol.codec
    tokens = [codec.image_tokens(r.image_size) for r in records]
    zooms = [zoom_factor(crop_window(b, r.image_size, protocol.crop), r.image_size, protocol)
             for r in records for b in r.boxes[: protocol.crop.max_crops]]
    facts: dict[str, Any] = {
        "pixel budget": f"{codec.min_pixels}-{codec.max_pixels} pixels ({codec.max_image_tokens} image tokens at most)",
        "image tokens per image": _spread(tokens),
        "crop policy": protocol.crop.to_dict(),
        "crop tokens at most": max_crop_tokens(protocol),
    }
    if not zooms:
        return facts, None
    facts["zoom factor on annotated boxes"] = _spread(zooms, 2)
    below = sum(z < 1 for z in zooms) / len(zooms)
    warning = None
    if below > ZOOM_OUT_SHARE:
        warning = (f"the crop policy zooms out on {below:.0%} of the data's boxes (zoom factor below 1, the least "
                   f"{min(zooms):.2f}): their crops show less detail than the global view already does; raise "
                   "crop.resize_longest, or use native crops (resize_longest: null) with a larger max_crop_pixels")
    return facts, warning


def _spread(values: Sequence[float], digits: int = 0) -> str:
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    fmt = (lambda v: f"{v:.{digits}f}") if digits else (lambda v: str(round(v)))
    return f"min {fmt(min(values))}, p10 {fmt(q[0])}, median {fmt(statistics.median(values))}, " \
           f"p90 {fmt(q[-1])}, max {fmt(max(values))} (over {len(values)})"


def preflight(command: str, run: Any, model_dir: str, protocol: ProtocolConfig, processor: Any,
              records: Sequence[Record], world_size: int = 1) -> Findings:
    """Lengths, vLLM settings and zoom of stage ``command`` (``warmup``, ``sft``, ``grpo``) on ``records``,
    for the model in ``model_dir`` (whose processor a vLLM engine would load)."""
    from rl.config import RecipeError
    from rl.vllm import check_vllm_settings, engine_processor_problem

    found = Findings()
    facts, warning = zoom_facts(records, protocol)
    found.facts.update(facts)
    if warning:
        found.warnings.append(warning)
    lengths = Lengths(protocol, processor)
    if command == "sft":
        answers = lengths.answer_tokens(records)
        found.answer_budgets = {q: max(DEFAULT_GENERATION[q]["max_new_tokens"], _round_up(max(n) + 1, 64))
                                for q, n in answers.items()}
        longest = sft_lengths(records, lengths, answers)
        need = max(n for n, _ in longest.values())
        for query, (n, rid) in longest.items():
            found.facts[f"longest SFT {query} example"] = f"{n} tokens (record {rid})"
        if run.max_length is not None and run.max_length < need:
            query, (n, rid) = max(longest.items(), key=lambda kv: kv[1])
            found.problems.append(f"max_length {run.max_length} would cut image or answer tokens: the {query} "
                                  f"example of record {rid} is {n} tokens; set max_length to {_round_up(need)} "
                                  f"or more, or lower the pixel budget (protocol.codec.max_pixels)")
    elif command == "grpo":
        completion = run.max_completion_length
        total, rid = rollout_lengths(records, lengths, run.stage, run.crop_source, completion)
        found.facts[f"longest {run.stage} rollout"] = (f"{total} tokens (record {rid}, answers at max_completion_length "
                                                        f"{completion})")
        cuts = budget_cuts(records, run.stage, run.crop_source, protocol, processor.tokenizer, completion)
        if cuts:
            found.warnings.append(cuts)
        if run.use_vllm:
            try:
                check_vllm_settings(run, world_size)
            except RecipeError as e:
                found.problems.append(str(e))
            if run.vllm_max_model_length is not None and run.vllm_max_model_length < total:
                found.problems.append(f"vllm_max_model_length {run.vllm_max_model_length} cannot hold the longest "
                                      f"{run.stage} rollout (record {rid}): {total} tokens; set it to "
                                      f"{_round_up(total)} or more")
            problem = engine_processor_problem(model_dir, protocol)
            if problem:
                found.problems.append(problem)
    return found


def _round_up(n: int, step: int = 256) -> int:
    return math.ceil(n / step) * step


def check_stage(command: str, run: Any, model_dir: str, protocol: ProtocolConfig, processor: Any,
                records: Sequence[Record], world_size: int = 1) -> Findings:
    """:func:`preflight` at the start of a stage: facts and warnings go to the log (the zoom factor
    among them), and any problem stops the stage before its weights load."""
    from rl.config import RecipeError

    found = preflight(command, run, model_dir, protocol, processor, records, world_size)
    for key, value in found.facts.items():
        logger.warning("pre-flight: %s: %s", key, value)
    for warning in found.warnings:
        logger.warning("pre-flight warning: %s", warning)
    if found.problems:
        raise RecipeError("pre-flight: " + " | ".join(found.problems))
    return found


def stage_of(recipe: str) -> tuple[str, int]:
    """The training command (warmup, sft, grpo) a recipe's header line launches, and on how many
    processes (``--num_processes N``, or SLURM's ``--nodes N --gres gpu:M``; else 1)."""
    from rl.config import RecipeError

    with open(recipe) as f:
        words = f.readline().lstrip("#").split()
    after = dict(zip(words, words[1:]))
    gpus = next((int(w.split(":")[-1]) for w in words if w.startswith("gpu:")), 1)
    world = int(after["--num_processes"]) if "--num_processes" in after else int(after.get("--nodes", 1)) * gpus
    for word, following in zip(words, words[1:]):
        if following == "--config" and word in ("warmup", "sft", "grpo"):
            return word, world
    raise RecipeError(f"{recipe}: its first line does not name the command it runs (e.g. '# zoomin sft --config "
                      f"{recipe}'); every recipe is headed by its launch command")


def main(argv: list[str], configs: dict[str, type]) -> int:
    """``zoomin check --config RECIPE [--sample N] [--key value ...]``: the stage's pre-flight, printed;
    0 when the stage can start, 1 with every problem named. Nothing heavier than the processor loads.
    The number of processes is the recipe header's (``WORLD_SIZE`` overrides it). ``configs`` maps each
    training command to its config class (given by the ``zoomin`` command, which may import every stage)."""
    import os

    from rl.config import RecipeError, check_common, check_grpo, parse
    from rl.modeling import build_protocol, load_processor
    from zoomin.data import load_records

    argv = list(argv)
    sample = 512
    if "--sample" in argv:
        i = argv.index("--sample")
        sample = int(argv[i + 1])
        del argv[i : i + 2]
    if "--config" not in argv[:-1]:
        raise RecipeError("zoomin check needs --config RECIPE")
    command, world = stage_of(argv[argv.index("--config") + 1])
    world = int(os.environ.get("WORLD_SIZE", world))
    import torch

    notes = []
    if not torch.cuda.is_available():  # a cluster recipe checked from a laptop: the parser refuses bf16 here
        argv += ["--bf16", "false", "--use_cpu", "true"]
        notes.append("no GPU here: bf16 and device settings were not checked")
    run, model = parse(configs[command], argv)
    found = Findings()
    try:
        family = check_grpo(run, model) if command == "grpo" else check_common(run, model)
        processor = load_processor(model.model_name_or_path)
        protocol = build_protocol(family, processor, run.protocol, model.model_name_or_path)
    except (RecipeError, OSError, ValueError) as e:
        print(f"problem: {e}")
        return 1
    records, report = load_records(run.train_data, run.image_root, limit=sample)
    print(f"data: {report.summary()} (the first {sample} rows; --sample N for more)")
    for finding in report.errors[:20]:
        found.warnings.append(f"skipped at training: {finding}")
    if not records:
        found.problems.append(f"no usable records in the first {sample} rows of {run.train_data}")
    else:
        found_stage = preflight(command, run, model.model_name_or_path, protocol, processor, records, world)
        found.facts, found.problems = found_stage.facts, found_stage.problems
        found.warnings = found_stage.warnings + found.warnings
    if command == "grpo" and run.use_vllm and importlib.util.find_spec("vllm") is None:
        notes.append("vLLM is not installed here: the stage itself needs it (use_vllm: true)")
    for note in notes:
        print(f"note: {note}")
    for line in found.lines():
        print(line)
    print(f"{command} {'cannot start: ' + str(len(found.problems)) + ' problem(s)' if found.problems else 'can start'}")
    return 1 if found.problems else 0
