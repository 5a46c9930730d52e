"""Scripted local model server for the end-to-end tests of the real `claude` and `codex` TUIs.

Standard library only. Serves, on 127.0.0.1 and an ephemeral port:

* the Anthropic Messages API used by Claude Code (`HEAD /`, `POST /v1/messages[?beta=true]`, always SSE);
* the OpenAI Responses API used by Codex (`POST /v1/responses`, SSE).

Replies come from one script (a FIFO queue) per API flavor: ``"anthropic"`` (claude) and ``"openai"`` (codex).
A reply is a text message (optionally streamed slowly), a shell tool call (answered automatically with a
follow-up reply once the tool result comes back), or an HTTP error. Auxiliary requests (claude requests that
offer no tools, e.g. title generation; codex "Generate a concise..." title requests) are answered with a fixed
title and never consume the script — except with ``toolless_turns`` set (for `claude -p --tools ""`, whose one
real turn offers no tools): then only a claude request asking for JSON output (its title request) is auxiliary.
Every request is recorded with its arrival time, the time its reply ended, and whether the client stayed for the
whole reply (an agent that interrupts its own turn hangs up).

Usage::

    with ModelServer() as srv:
        srv.script("anthropic", shell("echo hi > /tmp/x", then=text("wrote it")))
        srv.script("openai", text("hello from codex", stream_seconds=5))
        env = {"ANTHROPIC_BASE_URL": srv.base_url, ...}
        ...
        srv.wait_for(lambda: "ping" in srv.user_texts(), timeout=10)
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_TEXT",
    "TITLE_TEXT",
    "Flavor",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "error",
    "shell",
    "text",
    "user_texts_of",
    "with_usage",
]

Flavor = Literal["anthropic", "openai"]
# Kinds of recorded requests: "head", "anthropic", "anthropic-aux", "openai", "openai-aux", "other".
Kind = str
T = TypeVar("T")

DEFAULT_TEXT = "OK."
TITLE_TEXT = "E2E session"
DEFAULT_FOLLOWUP = "Done."
CODEX_TITLE_PREFIX = "Generate a concise"

# User texts injected by the agents themselves (not typed/pasted by anyone); filtered by user_texts().
_INJECTED_PREFIXES = (
    "<system-reminder>",
    "<environment_context>",
    "<user_instructions>",
    "<permissions instructions>",
    "<local-command-",
    "<command-name>",
    "# AGENTS.md instructions",
)


@dataclass(frozen=True)
class Reply:
    """One scripted model reply.

    kind:
      * "text": assistant message `text`; if `stream_seconds` > 0 it is sent as `chunks` deltas spread evenly
        over that many seconds.
      * "shell": a shell tool call running `command` (claude: tool_use `Bash` {"command"}; codex: function_call
        `exec_command` {"cmd"}). When the matching tool result comes back, `then` is served (default: a text
        reply "Done."), without consuming the script.
      * "error": HTTP `status` with a JSON error body, served for `repeat` consecutive requests (agents retry
        5xx; use a large `repeat` to make a failure stick).
    """

    kind: Literal["text", "shell", "error"]
    text: str = ""
    command: str = ""
    then: Reply | None = None
    stream_seconds: float = 0.0
    chunks: int = 10
    status: int = 500
    repeat: int = 1
    codex_extra: str = ""  # JSON object merged into codex's exec_command arguments
    error_body: str = ""  # an error's JSON body, instead of the default one
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers (an error's rate-limit headers)
    usage: tuple[int, int] | None = None  # (input, output) tokens the reply reports, instead of the defaults


def text(body: str, *, stream_seconds: float = 0.0, chunks: int = 10) -> Reply:
    """A text reply; with `stream_seconds` > 0 the deltas are spread over that many seconds."""
    return Reply(kind="text", text=body, stream_seconds=stream_seconds, chunks=max(1, chunks))


def shell(command: str, *, then: Reply | None = None, codex_extra: dict[str, Any] | None = None) -> Reply:
    """A shell tool call; `then` (default text "Done.") answers the request carrying the tool result.
    `codex_extra` is merged into codex's exec_command arguments, e.g.
    {"sandbox_permissions": "require_escalated", "justification": "..."} to ask to run outside the sandbox."""
    return Reply(kind="shell", command=command, then=then, codex_extra=json.dumps(codex_extra or {}))


def error(status: int = 500, *, repeat: int = 1, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """An HTTP error reply, served for `repeat` consecutive script-consuming requests; `body` replaces the
    default JSON error body and `headers` are added (e.g. a usage limit's rate-limit headers)."""
    return Reply(kind="error", status=status, repeat=max(1, repeat), error_body=json.dumps(body) if body else "",
                 headers=tuple((headers or {}).items()))


def with_usage(rep: Reply, input_tokens: int, output_tokens: int) -> Reply:
    """The same reply (and its follow-up), reporting these token counts in its usage."""
    then = with_usage(rep.then, input_tokens, output_tokens) if rep.then is not None else None
    return replace(rep, usage=(input_tokens, output_tokens), then=then)


COMPLETE, CLIENT_GONE = "complete", "client gone"


@dataclass(frozen=True)
class RecordedRequest:
    t: float  # time.monotonic() when the request arrived
    wall: float  # time.time() when the request arrived
    method: str
    path: str
    kind: Kind
    headers: dict[str, str]
    body: Any  # parsed JSON (None if no / non-JSON body)
    reply: str = ""  # short description of what was served
    ended: float = 0.0  # time.monotonic() when the reply was finished (or the client hung up); 0 while serving
    ended_wall: float = 0.0  # the same moment as time.time(), to compare with ledger timestamps
    outcome: str = ""  # COMPLETE, or CLIENT_GONE when the client hung up before the reply's end
    index: int = -1  # position among all recorded requests (see ModelServer.current)
    usage: tuple[int, int] = (0, 0)  # (input, output) tokens the reply reported

    def user_texts(self, *, include_injected: bool = False) -> list[str]:
        """The user message texts this request carries, oldest first (its whole conversation history)."""
        return user_texts_of(self, include_injected=include_injected)

    def assistant_texts(self) -> list[str]:
        """The assistant texts in this request's history (the model's earlier replies, as the agent kept them)."""
        return _assistant_texts_of(self.kind, self.body)

    @property
    def newest_user_text(self) -> str:
        """The last user text of the request: the prompt that started this turn (or "" when there is none)."""
        texts = self.user_texts()
        return texts[-1] if texts else ""


@dataclass
class _State:
    scripts: dict[str, deque[Reply]] = field(
        default_factory=lambda: {"anthropic": deque(), "openai": deque()}
    )
    followups: dict[str, Reply] = field(default_factory=dict)  # tool call id -> reply after its result
    errors_left: dict[str, tuple[Reply, int]] = field(default_factory=dict)
    records: list[RecordedRequest] = field(default_factory=list)


class ModelServer:
    """Thread-safe scripted model server. Use as a context manager or call start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:  # port 0: an ephemeral port
        self._host = host
        self._port = port
        self._cond = threading.Condition()
        self._state = _State()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.default_text = DEFAULT_TEXT
        self.title_text = TITLE_TEXT
        # `claude -p --tools ""` sends its turn with no tools: set this so such a request consumes the script.
        self.toolless_turns = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ModelServer:
        if self._httpd is not None:
            return self
        server = self

        class Handler(_Handler):
            model_server = server

        httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Root URL, e.g. for ANTHROPIC_BASE_URL. Codex wants `base_url + "/v1"` (see `openai_base_url`)."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    # ------------------------------------------------------------------ scripting
    def script(self, flavor: Flavor, *replies: Reply) -> None:
        """Append replies to the script of one API flavor ("anthropic" = claude, "openai" = codex)."""
        with self._cond:
            self._state.scripts[flavor].extend(replies)
            self._cond.notify_all()

    def pending(self, flavor: Flavor) -> int:
        """How many scripted replies of a flavor are still unconsumed."""
        with self._cond:
            return len(self._state.scripts[flavor])

    def clear(self, flavor: Flavor | None = None) -> None:
        """Drop the unconsumed replies (and a repeating error) of one flavor, or of both."""
        with self._cond:
            for f in [flavor] if flavor else ["anthropic", "openai"]:
                self._state.scripts[f].clear()
                self._state.errors_left.pop(f, None)

    def _next_reply(self, flavor: Flavor, tool_result_ids: list[str]) -> Reply:
        with self._cond:
            st = self._state
            for call_id in tool_result_ids:
                if call_id in st.followups:
                    return st.followups.pop(call_id)
            if flavor in st.errors_left:
                rep, left = st.errors_left[flavor]
                if left <= 1:
                    del st.errors_left[flavor]
                else:
                    st.errors_left[flavor] = (rep, left - 1)
                return rep
            queue = st.scripts[flavor]
            if not queue:
                return text(self.default_text)
            rep = queue.popleft()
            if rep.kind == "error" and rep.repeat > 1:
                st.errors_left[flavor] = (rep, rep.repeat - 1)
            return rep

    def _register_followup(self, call_id: str, rep: Reply) -> None:
        with self._cond:
            self._state.followups[call_id] = rep.then if rep.then is not None else text(DEFAULT_FOLLOWUP)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_e2e{next(self._ids):06d}"

    # ------------------------------------------------------------------ recording
    def _record(self, rec: RecordedRequest) -> int:
        with self._cond:
            index = len(self._state.records)
            self._state.records.append(replace(rec, index=index))
            self._cond.notify_all()
            return index

    def _set_reply_desc(self, index: int, desc: str) -> None:
        with self._cond:
            self._state.records[index] = replace(self._state.records[index], reply=desc)
            self._cond.notify_all()

    def _set_usage(self, index: int, usage: tuple[int, int]) -> None:
        with self._cond:
            self._state.records[index] = replace(self._state.records[index], usage=usage)

    def _set_outcome(self, index: int, outcome: str) -> None:
        with self._cond:
            self._state.records[index] = replace(self._state.records[index], ended=time.monotonic(),
                                                 ended_wall=time.time(), outcome=outcome)
            self._cond.notify_all()

    def requests(self, kind: Kind | None = None) -> list[RecordedRequest]:
        """Recorded requests, oldest first; `kind` filters: "head", "anthropic", "anthropic-aux", "openai",
        "openai-aux", "other"."""
        with self._cond:
            return [r for r in self._state.records if kind is None or r.kind == kind]

    def user_texts(self, flavor: Flavor | None = None, *, include_injected: bool = False) -> list[str]:
        """Texts of all user messages the model received (script-consuming requests only), in order of first
        appearance. A message repeated in later requests' histories counts once per distinct occurrence.
        Text injected by the agents themselves (system reminders, environment context...) is left out
        unless `include_injected`."""
        out: list[str] = []
        seen: dict[str, int] = {}
        kinds = ["anthropic", "openai"] if flavor is None else [flavor]
        for kind in kinds:
            for rec in self.requests(kind):
                counts: dict[str, int] = {}
                for t in user_texts_of(rec, include_injected=include_injected):
                    counts[t] = counts.get(t, 0) + 1
                    if counts[t] > seen.get(t, 0):
                        seen[t] = counts[t]
                        out.append(t)
        return out

    def current(self, rec: RecordedRequest) -> RecordedRequest:
        """The up-to-date record of a request (its outcome and end time fill in when its reply is over)."""
        with self._cond:
            return self._state.records[rec.index]

    def first_request_with(self, flavor: Flavor, needle: str, *, after: float = 0.0) -> RecordedRequest | None:
        """The first script-consuming request of `flavor` (arriving at or after monotonic time `after`) whose
        newest user text contains `needle`: the request in which the model first saw that prompt."""
        for rec in self.requests(flavor):
            if rec.t >= after and needle in rec.newest_user_text:
                return rec
        return None

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, poll: float = 0.05) -> T:
        """Re-evaluate `predicate` on every new request (and at least every `poll` s) until it returns a truthy
        value, which is returned. Raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout:.1f}s")
                self._cond.wait(min(remaining, poll))


def _texts_from_content(content: Any, text_types: tuple[str, ...]) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") in text_types and isinstance(block.get("text"), str):
                out.append(block["text"])
    return out


def user_texts_of(rec: RecordedRequest, *, include_injected: bool = False) -> list[str]:
    """The user texts of one recorded request, oldest first; text the agents inject themselves (system
    reminders, environment context...) is left out unless `include_injected`."""
    texts = _user_texts_of(rec.kind, rec.body)
    if include_injected:
        return texts
    return [t for t in texts if not t.lstrip().startswith(_INJECTED_PREFIXES)]


def _assistant_texts_of(kind: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    if kind.startswith("anthropic"):
        for msg in body.get("messages") or []:
            if isinstance(msg, dict) and msg.get("role") == "assistant":
                out.extend(_texts_from_content(msg.get("content"), ("text",)))
    elif kind.startswith("openai") and isinstance(body.get("input"), list):
        for item in body["input"]:
            if isinstance(item, dict) and item.get("type", "message") == "message" and item.get("role") == "assistant":
                out.extend(_texts_from_content(item.get("content"), ("output_text", "text")))
    return out


def _user_texts_of(kind: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    if kind.startswith("anthropic"):
        for msg in body.get("messages") or []:
            if isinstance(msg, dict) and msg.get("role") == "user":
                out.extend(_texts_from_content(msg.get("content"), ("text",)))
    elif kind.startswith("openai"):
        items = body.get("input")
        if isinstance(items, str):
            return [items]
        for item in items or []:
            if isinstance(item, dict) and item.get("type", "message") == "message" and item.get("role") == "user":
                out.extend(_texts_from_content(item.get("content"), ("input_text", "text")))
    return out


def _json_schema(body: dict[str, Any]) -> Any:
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
    return fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None


def _asks_json(body: dict[str, Any]) -> bool:
    """A claude request for structured JSON output (its title request asks for {"title": string})."""
    return _json_schema(body) is not None


def _aux_text(body: dict[str, Any], title: str) -> str:
    """Reply text for a claude auxiliary request: if it asks for JSON (output_config.format json_schema, as
    the title request does: {"title": string}), a JSON object filling every string property with `title`."""
    schema = _json_schema(body)
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return json.dumps({k: title for k, v in schema["properties"].items() if (v or {}).get("type") == "string"})
    return title


def _anthropic_tool_result_ids(body: dict[str, Any]) -> list[str]:
    msgs = body.get("messages") or []
    if not msgs or not isinstance(msgs[-1], dict):
        return []
    content = msgs[-1].get("content")
    if not isinstance(content, list):
        return []
    # A rejected tool call ("Interrupted") leaves its tool_result in the history; when the user then sends a
    # new prompt it shares the last message with that result. That is a new turn, not the follow-up.
    texts = _texts_from_content(content, ("text",))
    if any(t.strip() and not t.lstrip().startswith(_INJECTED_PREFIXES) for t in texts):
        return []
    return [
        str(b.get("tool_use_id"))
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id")
    ]


def _openai_tool_result_ids(body: dict[str, Any]) -> list[str]:
    items = body.get("input")
    if not isinstance(items, list):
        return []
    ids: list[str] = []
    # Outputs after the last user message are the results this request carries.
    for item in reversed(items):
        if not isinstance(item, dict):
            continue
        if item.get("type", "message") == "message" and item.get("role") == "user":
            break
        if item.get("type") in ("function_call_output", "custom_tool_call_output") and item.get("call_id"):
            ids.append(str(item["call_id"]))
    return ids


def _is_codex_title(body: dict[str, Any]) -> bool:
    return any(t.lstrip().startswith(CODEX_TITLE_PREFIX) for t in _user_texts_of("openai", body))


class _Handler(BaseHTTPRequestHandler):
    model_server: ModelServer  # set by subclass in ModelServer.start
    protocol_version = "HTTP/1.1"
    _index = -1  # this request's record
    _usage: tuple[int, int] | None = None  # the scripted reply's token counts, when it sets them

    def log_message(self, format: str, *args: Any) -> None:
        pass  # silence the per-request stderr log

    # ---------------------------------------------------------------- plumbing
    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        enc = (self.headers.get("Content-Encoding") or "").lower()
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "deflate":
            raw = zlib.decompress(raw)
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    def _record(self, kind: Kind, body: Any) -> int:
        self._index = self.model_server._record(
            RecordedRequest(
                t=time.monotonic(),
                wall=time.time(),
                method=self.command,
                path=self.path,
                kind=kind,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        return self._index

    def _send_json(self, status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    # ---------------------------------------------------------------- verbs
    def do_HEAD(self) -> None:
        self._record("head", None)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record("other", None)
        self._send_json(404, {"error": {"type": "not_found", "message": "not found"}})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        _, body = self._read_body()
        self._index = -1
        try:
            if path.endswith("/v1/messages") and isinstance(body, dict):
                self._anthropic(body)
            elif path.endswith("/responses") and isinstance(body, dict):
                self._openai(body)
            else:
                self._record("other", body)
                self._send_json(404, {"error": {"type": "not_found", "message": f"no route {path}"}})
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-reply (e.g. the agent interrupted its own turn).
            if self._index >= 0:
                self.model_server._set_outcome(self._index, CLIENT_GONE)
            return
        if self._index >= 0:
            self.model_server._set_outcome(self._index, COMPLETE)

    # ---------------------------------------------------------------- Anthropic Messages API
    def _anthropic(self, body: dict[str, Any]) -> None:
        srv = self.model_server
        aux = not body.get("tools") and (not srv.toolless_turns or _asks_json(body))
        idx = self._record("anthropic-aux" if aux else "anthropic", body)
        model = str(body.get("model") or "claude-e2e")
        if aux:
            srv._set_reply_desc(idx, "title")
            self._anthropic_text(model, _aux_text(body, srv.title_text), 0.0, 1)
            return
        rep = srv._next_reply("anthropic", _anthropic_tool_result_ids(body))
        self._usage = rep.usage
        if rep.kind == "error":
            srv._set_reply_desc(idx, f"error {rep.status}")
            self._send_json(
                rep.status,
                json.loads(rep.error_body) if rep.error_body else
                {"type": "error", "error": {"type": "api_error", "message": f"scripted error {rep.status}"}},
                rep.headers,
            )
        elif rep.kind == "shell":
            call_id = srv._new_id("toolu")
            srv._register_followup(call_id, rep)
            srv._set_reply_desc(idx, f"shell {rep.command!r} id={call_id}")
            self._anthropic_tool(model, call_id, rep.command)
        else:
            srv._set_reply_desc(idx, f"text {rep.text[:40]!r}")
            self._anthropic_text(model, rep.text, rep.stream_seconds, rep.chunks)

    def _anthropic_start(self, model: str) -> None:
        self._start_sse()
        self._event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.model_server._new_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self._usage[0] if self._usage else 10, "output_tokens": 1},
                },
            },
        )

    def _anthropic_end(self, stop_reason: str, output_tokens: int) -> None:
        output_tokens = self._usage[1] if self._usage else output_tokens
        if self._index >= 0:
            self.model_server._set_usage(self._index, (self._usage[0] if self._usage else 10, output_tokens))
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})

    def _anthropic_text(self, model: str, body: str, stream_seconds: float, chunks: int) -> None:
        self._anthropic_start(model)
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        for delay, piece in _pieces(body, stream_seconds, chunks):
            if delay:
                time.sleep(delay)  # deliberate pacing of a slow stream
            self._event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            )
        self._anthropic_end("end_turn", max(1, len(body) // 4))

    def _anthropic_tool(self, model: str, call_id: str, command: str) -> None:
        self._anthropic_start(model)
        self._event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": call_id, "name": "Bash", "input": {}},
            },
        )
        self._event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": json.dumps({"command": command})},
            },
        )
        self._anthropic_end("tool_use", 20)

    # ---------------------------------------------------------------- OpenAI Responses API
    def _openai(self, body: dict[str, Any]) -> None:
        srv = self.model_server
        aux = _is_codex_title(body)
        idx = self._record("openai-aux" if aux else "openai", body)
        if aux:
            srv._set_reply_desc(idx, "title")
            self._openai_text(srv.title_text, 0.0, 1)
            return
        rep = srv._next_reply("openai", _openai_tool_result_ids(body))
        self._usage = rep.usage
        if rep.kind == "error":
            srv._set_reply_desc(idx, f"error {rep.status}")
            self._send_json(
                rep.status, json.loads(rep.error_body) if rep.error_body else
                {"error": {"type": "server_error", "message": f"scripted error {rep.status}"}}, rep.headers,
            )
        elif rep.kind == "shell":
            call_id = srv._new_id("call")
            srv._register_followup(call_id, rep)
            srv._set_reply_desc(idx, f"shell {rep.command!r} id={call_id}")
            resp_id = srv._new_id("resp")
            self._start_sse()
            self._event("response.created", {"type": "response.created", "response": {"id": resp_id}})
            item = {
                "type": "function_call",
                "id": srv._new_id("fc"),
                "call_id": call_id,
                "name": "exec_command",
                "arguments": json.dumps({"cmd": rep.command, **json.loads(rep.codex_extra or "{}")}),
            }
            self._event("response.output_item.done",
                        {"type": "response.output_item.done", "output_index": 0, "item": item})
            self._openai_completed(resp_id)
        else:
            srv._set_reply_desc(idx, f"text {rep.text[:40]!r}")
            self._openai_text(rep.text, rep.stream_seconds, rep.chunks)

    def _openai_completed(self, resp_id: str) -> None:
        tokens_in, tokens_out = self._usage or (10, 5)
        if self._index >= 0:
            self.model_server._set_usage(self._index, (tokens_in, tokens_out))
        self._event(
            "response.completed",
            {
                "type": "response.completed",
                "response": {
                    "id": resp_id,
                    "usage": {
                        "input_tokens": tokens_in,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": tokens_out,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": tokens_in + tokens_out,
                    },
                },
            },
        )

    def _openai_text(self, body: str, stream_seconds: float, chunks: int) -> None:
        srv = self.model_server
        resp_id = srv._new_id("resp")
        item_id = srv._new_id("msg")
        self._start_sse()
        self._event("response.created", {"type": "response.created", "response": {"id": resp_id}})
        self._event(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "message", "id": item_id, "role": "assistant", "status": "in_progress", "content": []},
            },
        )
        for delay, piece in _pieces(body, stream_seconds, chunks):
            if delay:
                time.sleep(delay)  # deliberate pacing of a slow stream
            self._event(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                },
            )
        item = {
            "type": "message",
            "id": item_id,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": body, "annotations": []}],
        }
        self._event("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item})
        self._openai_completed(resp_id)


def _pieces(body: str, stream_seconds: float, chunks: int) -> list[tuple[float, str]]:
    """Split `body` into up to `chunks` pieces; each carries the delay to wait before sending it."""
    if stream_seconds <= 0 or chunks <= 1 or len(body) <= 1:
        return [(0.0, body)]
    n = min(chunks, len(body))
    size = -(-len(body) // n)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    delay = stream_seconds / max(1, len(parts) - 1)
    return [(0.0 if i == 0 else delay, p) for i, p in enumerate(parts)]
