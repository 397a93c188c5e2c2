#!/usr/bin/env python3
"""A deterministic stand-in for the OpenAI Chat Completions API, standard library only.

    python3 mock_openai.py --port 0 [--rate-limit-every N] [--log FILE]

binds 127.0.0.1, prints one line `{"port": <port>}` and serves until SIGTERM or SIGINT:

  POST /v1/chat/completions (also /chat/completions)
      Answers like the real API, streaming (`"stream": true`, server-sent events) or not, and
      echoes the requested model. The reply depends only on the request:
        * a request with `tools` whose list holds a tool not called yet in this conversation
          gets ONE call to the first such tool (`finish_reason: "tool_calls"`), its
          arguments built from the tool's JSON schema (required strings "x", integers and
          numbers 1, booleans true, arrays [], objects filled the same way);
        * otherwise a short text (`finish_reason: "stop"`).
      A tool counts as called when an assistant message of the conversation holds a
      `tool_calls` entry for it, when a `tool` message names it, or when any message text or
      `tool_call_id` holds the id of a call this server made to it (for frameworks that
      replay tool calls as text).
      Rules keyed by tool name:
        * `final_answer`, `final_result` and `final_result_*` (the tools through which some
          frameworks return their answer) are called only once every other tool has been
          called, in place of the text answer;
        * `ask_question_to_coworker` (CrewAI's second delegation tool, beside
          `delegate_work_to_coworker`) is never called, so a coordinator delegates once;
        * a `coworker` argument (CrewAI's delegation tools) names the first coworker that
          the tool's description lists ("... coworkers: researcher");
        * `tool_choice: "none"` gives the text answer; `tool_choice` naming a function calls
          that function.
      `response_format` of type `json_schema` gets, as its text, a JSON value built from the
      schema the same way.
      usage: prompt_tokens = (characters of every message content) // 4 + 7,
      completion_tokens = (characters of the reply text, or of the tool name and its
      arguments) // 4 + 1, prompt_tokens_details.cached_tokens = 0. Non-streaming answers
      always carry it; a stream ends with a usage chunk (empty `choices`) when
      `stream_options.include_usage` is true.
  With --rate-limit-every N (N >= 2), the Nth, 2Nth, ... chat completion request gets HTTP 429
      with an OpenAI error body and `retry-after: 0`; these are counted apart from the
      successful requests.
  GET /truth
      {"models": {MODEL: {"requests", "prompt_tokens", "completion_tokens", "streamed",
      "streamed_without_usage", "tool_call_responses", "rate_limited"}},
      "requests": total successful, "rate_limited": total 429s}. Tokens are counted for every
      successful request, including streams that did not ask for usage
      (`streamed_without_usage` counts those).
  POST /reset
      clears the counts.
"""

import argparse
import json
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FINAL_TOOLS = ("final_answer", "final_result")
NEVER_CALLED = ("ask_question_to_coworker",)
CALL_ID = re.compile(r"call_mk\d{6}")
COWORKERS = re.compile(r"coworkers?:\s*([^\n,]+)")
STREAM_DELAY_S = 0.01


def tool_name(tool):
    function = tool.get("function") if isinstance(tool, dict) else None
    if isinstance(function, dict):
        return function.get("name")
    return tool.get("name") if isinstance(tool, dict) else None


def is_final(name):
    return name in FINAL_TOOLS or name.startswith("final_result_")


def text_of(content):
    """The text of a message content: a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                for key in ("text", "content", "refusal"):
                    if isinstance(part.get(key), str):
                        out.append(part[key])
                        break
        return "".join(out)
    return json.dumps(content)


def value_for(schema, root, name="", depth=0):
    """A small value that satisfies a JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return "x"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return value_for(target, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            chosen = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return value_for((chosen or options)[0], root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        required = schema.get("required")
        if required is None:
            required = []
        return {
            key: value_for(properties.get(key, {}), root, key, depth + 1)
            for key in required
        }
    if kind == "array":
        return []
    if kind == "integer" or kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x"


def arguments_for(tool):
    function = (tool.get("function") if isinstance(tool, dict) else None) or tool or {}
    params = function.get("parameters") or {"type": "object"}
    value = value_for(params, params)
    if not isinstance(value, dict):
        return {}
    if "coworker" in value:
        # CrewAI's coworker tools name the agents they reach in their description.
        found = COWORKERS.search(function.get("description") or "")
        if found:
            value["coworker"] = found.group(1).strip()
    return value


class State:
    def __init__(self, rate_limit_every):
        self.lock = threading.Lock()
        self.rate_limit_every = rate_limit_every
        self.seen = 0  # every chat completion request, 429s included (drives the injection)
        self.next_call = 0
        self.call_names = {}  # id of a tool call this server made -> tool name
        self.models = {}
        self.rate_limited = 0

    def model(self, name):
        entry = self.models.get(name)
        if entry is None:
            entry = {
                "requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "streamed": 0,
                "streamed_without_usage": 0,
                "tool_call_responses": 0,
                "rate_limited": 0,
            }
            self.models[name] = entry
        return entry

    def truth(self):
        with self.lock:
            return {
                "models": {k: dict(v) for k, v in sorted(self.models.items())},
                "requests": sum(v["requests"] for v in self.models.values()),
                "rate_limited": self.rate_limited,
            }

    def reset(self):
        with self.lock:
            self.models = {}
            self.rate_limited = 0
            self.seen = 0

    def admit(self, model):
        """False when this request is to be answered 429."""
        with self.lock:
            self.seen += 1
            every = self.rate_limit_every
            if every and self.seen % every == 0:
                self.rate_limited += 1
                self.model(model)["rate_limited"] += 1
                return False
            return True

    def new_call_id(self, name):
        with self.lock:
            self.next_call += 1
            call_id = "call_mk%06d" % self.next_call
            self.call_names[call_id] = name
            return call_id

    def record(self, model, prompt_tokens, completion_tokens, stream, usage_sent, tool_call):
        with self.lock:
            entry = self.model(model)
            entry["requests"] += 1
            entry["prompt_tokens"] += prompt_tokens
            entry["completion_tokens"] += completion_tokens
            if stream:
                entry["streamed"] += 1
                if not usage_sent:
                    entry["streamed_without_usage"] += 1
            if tool_call:
                entry["tool_call_responses"] += 1

    def called_tools(self, messages):
        names = set()
        for message in messages:
            if not isinstance(message, dict):
                continue
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    function = call.get("function") or {}
                    if function.get("name"):
                        names.add(function["name"])
            if message.get("role") in ("tool", "function") and message.get("name"):
                names.add(message["name"])
            haystack = text_of(message.get("content"))
            if message.get("tool_call_id"):
                haystack += " " + str(message["tool_call_id"])
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and call.get("id"):
                    haystack += " " + str(call["id"])
            with self.lock:
                for call_id in CALL_ID.findall(haystack):
                    if call_id in self.call_names:
                        names.add(self.call_names[call_id])
        return names


def choose(state, body):
    """('tool', tool) or ('text', text) for a request body."""
    messages = body.get("messages") or []
    tools = [t for t in (body.get("tools") or []) if tool_name(t)]
    choice = body.get("tool_choice")
    if tools and choice != "none":
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name") or choice.get("name")
            for tool in tools:
                if tool_name(tool) == wanted:
                    return "tool", tool
        called = state.called_tools(messages)
        pending = [
            t for t in tools
            if tool_name(t) not in called and tool_name(t) not in NEVER_CALLED
        ]
        ordinary = [t for t in pending if not is_final(tool_name(t))]
        if ordinary:
            return "tool", ordinary[0]
        finals = [t for t in tools if is_final(tool_name(t))]
        if finals:
            return "tool", finals[0]
        if choice == "required":
            return "tool", tools[0]
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return "text", json.dumps(value_for(schema, schema))
        if response_format.get("type") == "json_object":
            return "text", json.dumps({"answer": "x"})
    turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
    return "text", "All done: the weather is sunny and the notes are found (%d results)." % turns


def prompt_tokens_of(body):
    total = 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += len(text_of(message.get("content")))
    return total // 4 + 7


def usage(prompt, completion):
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def pieces(text, count):
    """The text cut into about `count` pieces on word boundaries."""
    words = re.findall(r"\S+\s*", text) or [text]
    size = max(1, -(-len(words) // count))
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-openai/1"
    timeout = 120
    disable_nagle_algorithm = True  # no 40 ms stalls between the header and body writes

    def log_message(self, fmt, *args):  # quiet: stdout carries the port line only
        pass

    @property
    def state(self):
        return self.server.state

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, payload, headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def path_only(self):
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self):
        path = self.path_only()
        if path == "/truth":
            self.send_json(200, self.state.truth())
        elif path in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "mock"}
                for m in ("gpt-4o", "gpt-4o-mini")
            ]})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        path = self.path_only()
        raw = self.read_body()
        if path == "/reset":
            self.state.reset()
            self.send_json(200, {"reset": True})
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json(404, {"error": {"message": "not found: " + path,
                                           "type": "invalid_request_error", "param": None,
                                           "code": "unknown_url"}})
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body is not an object")
        except ValueError as error:
            self.send_json(400, {"error": {"message": "invalid JSON: %s" % error,
                                           "type": "invalid_request_error", "param": None,
                                           "code": None}})
            return
        model = str(body.get("model") or "unknown")
        log = getattr(self.server, "log", None)
        if log is not None:
            with self.state.lock:
                log.write(json.dumps(body) + "\n")
                log.flush()
        if not self.state.admit(model):
            self.send_json(429, {"error": {
                "message": "Rate limit reached for %s; please try again." % model,
                "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
                headers=[("retry-after", "0"), ("x-ratelimit-remaining-requests", "0")])
            return
        kind, answer = choose(self.state, body)
        prompt = prompt_tokens_of(body)
        created = int(time.time())
        completion_id = "chatcmpl-mock%d" % (time.monotonic_ns() % 10**12)
        if kind == "tool":
            name = tool_name(answer)
            arguments = json.dumps(arguments_for(answer))
            call_id = self.state.new_call_id(name)
            completion = (len(name) + len(arguments)) // 4 + 1
        else:
            completion = len(answer) // 4 + 1
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not stream:
            message = {"role": "assistant", "content": None, "refusal": None,
                       "annotations": []}
            if kind == "tool":
                message["tool_calls"] = [{"id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": arguments}}]
                finish = "tool_calls"
            else:
                message["content"] = answer
                finish = "stop"
            self.state.record(model, prompt, completion, False, True, kind == "tool")
            self.send_json(200, {
                "id": completion_id, "object": "chat.completion", "created": created,
                "model": model, "system_fingerprint": "fp_mock",
                "service_tier": "default",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage(prompt, completion),
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta, finish=None, choices=True, usage_value=None):
            payload = {"id": completion_id, "object": "chat.completion.chunk",
                       "created": created, "model": model, "system_fingerprint": "fp_mock",
                       "service_tier": "default",
                       "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish}] if choices else []}
            if include_usage:
                payload["usage"] = usage_value
            self.write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        try:
            if kind == "tool":
                chunk({"role": "assistant", "content": None, "tool_calls": [
                    {"index": 0, "id": call_id, "type": "function",
                     "function": {"name": name, "arguments": ""}}]})
                for piece in [arguments[i:i + 8] for i in range(0, len(arguments), 8)] or [""]:
                    time.sleep(STREAM_DELAY_S)
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                chunk({}, "tool_calls")
            else:
                chunk({"role": "assistant", "content": "", "refusal": None})
                for piece in pieces(answer, 4):
                    time.sleep(STREAM_DELAY_S)
                    chunk({"content": piece})
                chunk({}, "stop")
            if include_usage:
                chunk(None, choices=False, usage_value=usage(prompt, completion))
            self.write_chunk(b"data: [DONE]\n\n")
            self.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        self.state.record(model, prompt, completion, True, include_usage, kind == "tool")

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing a kept-alive connection is no error worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit-every", type=int, default=0)
    parser.add_argument("--log", help="append every chat completion request body here, one a line")
    args = parser.parse_args()
    if args.rate_limit_every == 1:
        parser.error("--rate-limit-every must be 0 (off) or at least 2")
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.rate_limit_every)
    server.log = open(args.log, "a") if args.log else None

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(json.dumps({"port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
