"""A real local HTTP server speaking OpenAI's ``POST /v1/chat/completions``, for testing the LLM backend.

It binds 127.0.0.1 on an ephemeral port, parses each request the way an OpenAI-compatible server does
(JSON body; ``model``, ``messages``, optional ``response_format``/``temperature``; bearer token) and answers
with an OpenAI-shaped ``chat.completion`` object — or an OpenAI-shaped error — so the official client's
own parsing runs unchanged. What it answers is scriptable per test:

* ``server.script(reply, reply, ...)`` — replies consumed one per request, in arrival order;
* ``FakeOpenAIServer(responder=fn)`` — ``fn(body, n) -> Reply`` answers whatever the script does not.

It can also speak like other servers' request validation: ``response_format_types=("text", "json_object")``
refuses any other ``response_format.type`` the way llama-cpp-python's server does (HTTP 500 whose body is
a pydantic ``literal_error`` naming ``response_format``), and ``forbid_extra=True`` refuses unknown top-level
fields (``guided_json``, ``structured_outputs``) with HTTP 400 ``extra_forbidden``, like a strict server.

It records every request (raw bytes and parsed body) and the largest number of requests in flight at once.
A ``Reply`` may sleep first (``delay_s``) to simulate a slow model; sleeping ends early on ``stop()``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROLES = {"system", "developer", "user", "assistant", "tool"}
KNOWN_FIELDS = {"model", "messages", "temperature", "top_p", "n", "stream", "stop", "seed", "max_tokens",
                "max_completion_tokens", "response_format", "presence_penalty", "frequency_penalty", "user"}


@dataclass(frozen=True)
class Reply:
    content: str | None = None  # the assistant message (status 200)
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "server_error"
    refusal: str | None = None
    finish_reason: str = "stop"


def answer(findings: list[dict[str, Any]], delay_s: float = 0.0) -> Reply:
    """A 200 reply whose content is an ``LLMAnswer`` JSON with these findings."""
    return Reply(content=json.dumps({"findings": findings}), delay_s=delay_s)


def error(status: int, delay_s: float = 0.0, headers: dict[str, str] | None = None,
          error_type: str = "server_error") -> Reply:
    return Reply(status=status, delay_s=delay_s, headers=headers or {}, error_type=error_type)


@dataclass(frozen=True)
class Recorded:
    raw: bytes  # the request body as received
    body: dict[str, Any]  # parsed
    headers: dict[str, str]  # lower-case names


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.type = status, type_


class FakeOpenAIServer:
    def __init__(self, responder: Callable[[dict[str, Any], int], Reply] | None = None,
                 served_model: str | None = None, api_key: str | None = None,
                 response_format_types: tuple[str, ...] = ("text", "json_object", "json_schema"),
                 forbid_extra: bool = False):
        self.responder = responder
        self.response_format_types = response_format_types
        self.forbid_extra = forbid_extra
        self.served_model = served_model  # None: any model name is served
        self.api_key = api_key  # None: any bearer token is accepted
        self.requests: list[Recorded] = []  # requests that passed validation (and got a scripted reply)
        self.refused: list[Recorded] = []  # requests refused by validation (400 / llama.cpp-style 500)
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- scripting --------------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    def _next_reply(self, body: dict[str, Any], n: int) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        if self.responder is not None:
            return self.responder(body, n)
        return error(500, error_type="no_scripted_reply")

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def validate_request(body: Any, response_format_types: tuple[str, ...] = ("text", "json_object", "json_schema"),
                     forbid_extra: bool = False) -> dict[str, Any]:
    """Check a chat-completions body as an OpenAI-compatible server does; raise ``_BadRequest`` if malformed."""
    if not isinstance(body, dict):
        raise _BadRequest(400, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest(400, "'model' is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty array")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _BadRequest(400, f"messages[{i}].role is invalid")
        if not isinstance(m.get("content"), str):
            raise _BadRequest(400, f"messages[{i}].content must be a string")
    t = body.get("temperature")
    if t is not None and not (isinstance(t, (int, float)) and 0 <= t <= 2):
        raise _BadRequest(400, "'temperature' must be a number in [0, 2]")
    if forbid_extra:
        for key in sorted(set(body) - KNOWN_FIELDS):
            raise _BadRequest(400, f"[{{'type': 'extra_forbidden', 'loc': ('body', '{key}'), "
                                   f"'msg': 'Extra inputs are not permitted'}}]")
    rf = body.get("response_format")
    if rf is not None:
        if isinstance(rf, dict) and rf.get("type") in ("text", "json_object", "json_schema") \
                and rf["type"] not in response_format_types:  # llama-cpp-python: a pydantic error, as HTTP 500
            allowed = " or ".join(f"'{t}'" for t in response_format_types)
            raise _BadRequest(500, f"[{{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                                   f"'msg': \"Input should be {allowed}\", 'input': '{rf['type']}'}}]",
                              "internal_server_error")
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
            raise _BadRequest(400, "'response_format.type' must be text, json_object or json_schema")
        if rf["type"] == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(js.get("name", ""))):
                raise _BadRequest(400, "'response_format.json_schema.name' is required")
            if not isinstance(js.get("schema"), dict) or js["schema"].get("type") != "object":
                raise _BadRequest(400, "'response_format.json_schema.schema' must be an object schema")
            if "strict" in js and not isinstance(js["strict"], bool):
                raise _BadRequest(400, "'response_format.json_schema.strict' must be a boolean")
    return body


def completion(body: dict[str, Any], reply: Reply, n: int) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for ``reply``."""
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    completion_tokens = len((reply.content or "").split())
    return {
        "id": f"chatcmpl-fake{n:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fake",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.content, "refusal": reply.refusal},
            "logprobs": None,
            "finish_reason": reply.finish_reason,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAIServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) while we slept

    def _error(self, status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": type_, "param": None, "code": None}}, headers)

    def do_GET(self):  # noqa: N802
        self._error(404, f"no route GET {self.path}", "not_found_error")

    def do_POST(self):  # noqa: N802
        owner = self.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}", "not_found_error")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (owner.api_key is not None and auth != f"Bearer {owner.api_key}"):
            return self._error(401, "invalid or missing API key", "authentication_error")
        try:
            body = validate_request(json.loads(raw), owner.response_format_types, owner.forbid_extra)
        except json.JSONDecodeError:
            return self._error(400, "request body is not valid JSON", "invalid_request_error")
        except _BadRequest as e:
            with owner._lock:
                owner.refused.append(Recorded(raw, json.loads(raw), {k.lower(): v for k, v in self.headers.items()}))
            return self._error(e.status, str(e), e.type)
        if owner.served_model is not None and body["model"] != owner.served_model:
            return self._error(404, f"The model `{body['model']}` does not exist.", "NotFoundError")
        with owner._lock:
            n = len(owner.requests)
            owner.requests.append(Recorded(raw, body, {k.lower(): v for k, v in self.headers.items()}))
        owner._enter()
        try:
            reply = owner._next_reply(body, n)
            if reply.delay_s:
                owner._stop.wait(reply.delay_s)
            if reply.status != 200:
                return self._error(reply.status, f"scripted HTTP {reply.status}", reply.error_type, reply.headers)
            self._send(200, completion(body, reply, n), reply.headers)
        finally:
            owner._leave()
