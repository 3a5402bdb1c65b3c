"""Annotation throughput against a chat-completions server with a fixed latency per request.

    OMP_NUM_THREADS=1 .venv/bin/python bench/annotate.py [--latency 0.2] [--concurrency 1 8 32]

The server is tests/chat_server.py (the tests' scripted explainer and grounder, all answers good),
in its own process so that it does not share the pipeline's interpreter lock; every chat request
waits ``--latency`` seconds before it is answered. A record costs two rounds of two parallel
requests (explain twice, then ground twice), so the ideal rate at concurrency c is
c / (2 * latency) records/s; the table gives the measured rate, its share of the ideal, and the
CPU seconds the pipeline's process and the server's process spent (where the ideal is missed, the
machine's cores are the limit, not the pipeline's waiting). Each case annotates ``--seconds`` worth
of ideal work (at least 16 records) into a fresh folder, after an untimed warm-up run (imports,
first connection).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))

from chat_server import ChatServer, ForensicScript, make_image  # noqa: E402

from zoomin.annotate import Endpoint, Settings, annotate  # noqa: E402


def _serve(latency: float, urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    with ChatServer(ForensicScript(), latency=latency) as server:
        urls.put(server.url)
        stop.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _source(folder: Path, n: int) -> Path:
    lines = []
    for i in range(n):
        make_image(folder / "images" / f"{i}.png", "good", i, (256, 192))
        label = "fake" if i % 2 else "real"
        lines.append(f'{{"id": "r{i}", "image": "images/{i}.png", "label": "{label}"}}\n')
    (folder / "src.jsonl").write_text("".join(lines))
    return folder / "src.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each case")
    args = ap.parse_args()

    urls, stop = multiprocessing.Queue(), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(args.latency, urls, stop), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    ideal = {c: c / (2 * args.latency) for c in args.concurrency}
    n_max = max(16, max(round(ideal[c] * args.seconds) for c in args.concurrency))
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = _source(Path(tmp) / "src", n_max)
            for run, c in enumerate([1, *args.concurrency]):
                n = 2 if run == 0 else max(16, round(ideal[c] * args.seconds))
                settings = Settings(explainer=Endpoint("explainer", url, "m"), grounder=Endpoint("grounder", url, "m"),
                                    concurrency=c, timeout=30.0)
                cpu, server_cpu = time.process_time(), _cpu_seconds(server.pid)
                summary = annotate(src, Path(tmp) / f"out{run}", settings, limit=n, progress=False)
                if run:
                    assert summary.counts["done"] == n, summary.counts
                    rows.append((c, n, summary.seconds, n / summary.seconds, ideal[c], time.process_time() - cpu,
                                 _cpu_seconds(server.pid) - server_cpu))
    finally:
        stop.set()
        server.join(timeout=10)

    print(f"latency {args.latency * 1000:.0f} ms per request, 4 requests per record (2 rounds)\n")
    print("| concurrency | records | seconds | records/s | ideal records/s | share of ideal | pipeline CPU s | "
          "server CPU s |\n|---|---|---|---|---|---|---|---|")
    for c, n, secs, rate, best, cpu, server_cpu in rows:
        print(f"| {c} | {n} | {secs:.2f} | {rate:.2f} | {best:.1f} | {rate / best:.0%} | {cpu:.1f} | {server_cpu:.1f} |")


if __name__ == "__main__":
    main()
