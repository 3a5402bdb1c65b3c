"""Launch target of the multi-process rollout tests (tests/test_distributed.py): ``zoomin`` with two
probes that only code inside the training processes can place.

* The reward ``distributed_probe:seen`` (named in ``--rewards``) appends what the reward functions
  received, one line per rollout (step, record id, locate answer, regions shown), to
  ``$ZOOMIN_PROBE_DIR/rank-<RANK>.jsonl``, and scores 0.
* With ``ZOOMIN_PROBE_BOXES`` set, e.g. ``2,0``, every query-1 answer of process ``r`` names that
  entry's number of boxes (a random-weight model names none); all that follows (crops, the inserted
  turn, query 2, rewards, the loss) is the real path.

Run as a script (``accelerate launch ... tests/distributed_probe.py grpo ...``), so that this folder
is on the path and the reward imports as ``distributed_probe``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BOXES = [[4, 4, 40, 40], [10, 10, 60, 50], [20, 8, 70, 30]]


def seen(completions: list, **columns) -> list[float]:
    """Record, per rollout, the record id, the locate answer and the regions the reward functions got."""
    rows = zip(columns["id"], columns["locate_completions"], columns["region_boxes"])
    step = columns["trainer_state"].global_step
    with open(Path(os.environ["ZOOMIN_PROBE_DIR"]) / f"rank-{os.environ['RANK']}.jsonl", "a") as f:
        for record_id, locate, regions in rows:
            f.write(json.dumps({"step": step, "id": record_id, "locate": locate, "regions": regions}) + "\n")
    return [0.0] * len(completions)


def script_locate_answers(boxes_per_rank: list[int]) -> None:
    """Replace the text of every query-1 answer of this process by one naming its number of boxes."""
    from trl import GRPOTrainer

    from rl.trl_adapter import Generation
    from zoomin.protocol import ProtocolConfig

    count = boxes_per_rank[int(os.environ["RANK"])]
    answer = ProtocolConfig().render_locate("Region 1: smear.", BOXES[:count], "fake")
    generate = GRPOTrainer._generate

    def scripted(self, prompts):
        out = Generation(*generate(self, prompts))
        return tuple(out._replace(completions=[[{"role": "assistant", "content": answer}] for _ in prompts]))

    GRPOTrainer._generate = scripted


if __name__ == "__main__":
    if os.environ.get("ZOOMIN_PROBE_BOXES"):
        script_locate_answers([int(n) for n in os.environ["ZOOMIN_PROBE_BOXES"].split(",")])
    from rl.cli import main

    sys.exit(main(sys.argv[1:]))
