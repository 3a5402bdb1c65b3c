"""A real OpenAI-compatible chat-completions server on 127.0.0.1, answering from a script.

Used by tests/test_annotate.py and bench/annotate.py. It speaks the protocol the annotation
pipeline's client speaks (``POST /v1/chat/completions`` with ``usage``, ``GET /v1/models``,
error bodies with status codes and headers), so the pipeline is tested through real HTTP, the
``openai`` client's own retries and timeouts included.

:class:`ForensicScript` plays both models. It reads the *scenario* of a request from the image
itself: test images are solid colours whose red channel is a scenario code (a solid colour survives
any resize), so every record can script its own behaviour without the server knowing record ids.
As a grounder it answers like Qwen2.5-VL: boxes in pixels of the image exactly as received (or on
the 0-1000 grid when ``grid``), so the pipeline's decoding is checked against known regions.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

SCENARIOS = (
    "good", "fenced", "disagree", "wrong_label", "no_verdict", "malformed", "ungroundable", "oversized",
    "partly_oversized", "no_overlap", "chatty_grounder", "rate_limited", "flaky", "broken", "stall_once",
    "stall_always",
)
CUES = ["the checkerboard patch on the left", "the smeared texture at the bottom right"]
REGIONS = [(0.10, 0.20, 0.40, 0.50), (0.55, 0.60, 0.90, 0.85)]
"""Where each cue's region lies, as fractions of the image's width and height."""


def make_image(path: Path, scenario: str, number: int, size: tuple[int, int] = (120, 90)) -> Path:
    """A solid image whose colour names its scenario (red) and record (green)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (8 * SCENARIOS.index(scenario) + 4, number % 256, 128)).save(path)
    return path


def scenario_of(image: Image.Image) -> str:
    red = image.getpixel((image.width // 2, image.height // 2))[0]
    return SCENARIOS[min(max(round((red - 4) / 8), 0), len(SCENARIOS) - 1)]


@dataclass
class Call:
    """One request as the server saw it."""

    kind: str
    """"explain", "ground" or "other"."""
    model: str
    image: Image.Image | None
    text: str
    structured: bool
    authorization: str | None
    key: str
    """Identifies the record (the image data) and the request kind."""


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    headers: dict = field(default_factory=dict)
    stall: float = 0.0


class ChatServer:
    """``with ChatServer(script) as server: server.url`` is a live ``/v1`` base URL."""

    def __init__(self, script: Callable[[Call, int], Reply], latency: float = 0.0, models: tuple = ("m",),
                 structured: bool = True, prompt_tokens: int = 100, completion_tokens: int = 10,
                 api_key: str | None = None) -> None:
        self.script = script
        self.api_key = api_key
        """When set, requests without ``Authorization: Bearer <api_key>`` get 401, as from a hosted API."""
        self.latency = latency
        self.models = list(models)
        self.structured = structured
        self.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}
        self.calls: list[Call] = []
        self.answered: Counter = Counter()
        """Successful answers per request kind."""
        self.statuses: Counter = Counter()
        self._seen: Counter = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, body: dict, authorization: str | None) -> tuple[int, dict, dict | None, float]:
        """(status, headers, JSON body, seconds to stall before sending it)."""
        time.sleep(self.latency)
        call = _call(body, authorization)
        with self._lock:
            self.calls.append(call)
            n = self._seen[call.key]
            self._seen[call.key] += 1
        if call.structured and not self.structured:
            with self._lock:
                self.statuses[400] += 1
            return 400, {}, _error("response_format is not supported by this server", 400), 0.0
        reply = self.script(call, n)
        with self._lock:
            self.statuses[reply.status] += 1
            if reply.status == 200 and not reply.stall:  # a stalled answer comes after the client gave up
                self.answered[call.kind] += 1
        if reply.status != 200:
            return reply.status, reply.headers, _error(reply.text or "scripted failure", reply.status), reply.stall
        completion = {
            "id": f"chatcmpl-{len(self.calls)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": "stop"}],
            "usage": self.usage,
        }
        return 200, reply.headers, completion, reply.stall


def _error(message: str, status: int) -> dict:
    return {"error": {"message": message, "type": "scripted", "code": status}}


def _call(body: dict, authorization: str | None) -> Call:
    image, text, url = None, "", ""
    for message in body.get("messages", []):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
            elif part.get("type") == "text":
                text += part["text"]
    kind = "explain" if "known to be" in text else "ground" if "Locate each" in text else "other"
    return Call(kind, body.get("model", ""), image, text, "response_format" in body, authorization,
                f"{kind}:{hash(url)}")


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _refused(self) -> bool:
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._send(401, {}, _error("invalid API key", 401))
                return True
            return False

        def do_GET(self) -> None:
            if self._refused():
                return
            if self.path.rstrip("/").endswith("/models"):
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models]
                self._send(200, {}, {"object": "list", "data": data})
            else:
                self._send(404, {}, _error("not found", 404))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self._refused():
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {}, _error("not found", 404))
                return
            status, headers, payload, stall = server.answer(body, self.headers.get("Authorization"))
            if stall:
                time.sleep(stall)
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict, payload: dict | None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): what a real server sees too

    return Handler


class ForensicScript:
    """Scripted explainer and grounder; see the module docs. ``stall`` is how long a stalled
    request hangs (longer than the client's timeout in the tests)."""

    def __init__(self, grid: bool = False, stall: float = 3.0) -> None:
        self.grid = grid
        self.stall = stall
        self._answers: Counter = Counter()
        self._lock = threading.Lock()
        self.heal: set[str] = set()
        """Scenarios whose faults have stopped (the endpoint came back)."""

    def __call__(self, call: Call, n: int) -> Reply:
        scenario = scenario_of(call.image) if call.image is not None else "good"
        fault = self._fault(scenario, call.kind, n)
        if fault is not None:
            return fault
        with self._lock:  # answers come in pairs (two explanations, two groundings), again when a record is redone
            k = self._answers[call.key] % 2
            self._answers[call.key] += 1
        if call.kind == "explain":
            return Reply(self._explain(scenario, "real" if "a real photograph" in call.text else "fake", k))
        if call.kind == "ground":
            return Reply(self._ground(scenario, call.image.size, k))
        return Reply("hello")

    def _fault(self, scenario: str, kind: str, n: int) -> Reply | None:
        if scenario in self.heal:
            return None
        if scenario == "rate_limited" and kind == "explain" and n == 0:
            return Reply("slow down", status=429, headers={"Retry-After": "1"})
        if scenario == "flaky" and kind == "ground" and n == 0:
            return Reply("internal error", status=500)
        if scenario == "broken" and kind == "explain":
            return Reply("the model crashed", status=500)
        if (scenario == "stall_once" and kind == "explain" and n == 0) or (scenario == "stall_always" and kind == "explain"):
            return Reply(self._explain("good", "fake", 0), stall=self.stall)
        return None

    @staticmethod
    def _explain(scenario: str, label: str, k: int) -> str:
        other = "real" if label == "fake" else "fake"
        verdict = {"disagree": label if k == 0 else other, "wrong_label": other}.get(scenario, label)
        if scenario == "malformed":
            return '{"explanation": "The checkerboard patch shows upsampling. The image is fake.", "cues": ["the ch'
        text = ("The checkerboard patch on the left repeats with a period of eight pixels, and the texture at the "
                f"bottom right is smeared along one direction. The image is {verdict}.")
        if scenario == "no_verdict":
            text = "The checkerboard patch on the left repeats; the texture at the bottom right is smeared."
        answer = json.dumps({"explanation": text, "cues": CUES})
        if scenario == "fenced":
            return f"Sure! Here is my analysis.\n```json\n{answer}\n```\nLet me know if you need more."
        return answer

    def _ground(self, scenario: str, size: tuple[int, int], k: int) -> str:
        regions = list(REGIONS)
        if scenario == "no_overlap" and k == 1:
            regions = [(x1 + 0.45, y1, x2 + 0.45, y2) if x2 + 0.45 <= 1 else (0.0, y1, x2 - x1, y2)
                       for x1, y1, x2, y2 in regions]
        elif k == 1:  # a second sample of the same grounder: nearly the same boxes
            regions = [(x1 + 0.02, y1 + 0.01, min(x2 + 0.02, 1.0), y2 + 0.01) for x1, y1, x2, y2 in regions]
        entries = [{"bbox_2d": self._frame(r, size), "label": cue} for r, cue in zip(regions, CUES)]
        if scenario == "ungroundable":
            entries = entries[:1]
        elif scenario == "oversized":
            entries[1]["bbox_2d"] = self._frame((0.05, 0.05, 0.95, 0.95), size)
        elif scenario == "partly_oversized":
            entries.append({"bbox_2d": self._frame((0.0, 0.0, 1.0, 0.9), size), "label": CUES[0]})
        elif scenario == "chatty_grounder":
            entries = [{"bbox_2d": e["bbox_2d"], "label": e["label"].replace("the ", "").title()} for e in entries]
            return f"The regions are:\n```json\n{json.dumps(entries, indent=2)}\n```"
        return json.dumps(entries)

    def _frame(self, region: tuple, size: tuple[int, int]) -> list[int]:
        w, h = (1000, 1000) if self.grid else size
        x1, y1, x2, y2 = region
        return [round(x1 * w), round(y1 * h), round(x2 * w), round(y2 * h)]
