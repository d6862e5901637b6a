#!/usr/bin/env python3
"""Local stand-in for OpenAI's Files, Uploads and Fine-tuning HTTP API.

Used by pg_finetune's TAP tests and the offline demo.  It follows the public
OpenAPI spec and the behaviour observed in real traffic (see
/work/shared/reference/providers.md), simulates job progression on a clock,
and can be told to misbehave through a control API under /_mock (see
README.md beside this file).  Standard library only.

    python3 mock_openai.py --port 0 --port-file /tmp/x.port --state-dir DIR \
        [--speed 50] [--duration 6] [--keys sk-a,sk-b] [--log FILE]
"""

import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import string
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

ORG_ID = "org-mock"
ORG_NAME = "mock-org"
OPENAI_VERSION = "2020-10-01"

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision")
UPLOAD_MIME_TYPES = ("text/jsonl", "application/jsonl", "application/x-ndjson",
                     "application/json", "text/plain", "application/octet-stream")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
ACTIVE_PHASES = ("validating_files", "queued", "running")
# Share of the job's duration spent in each phase.
PHASE_SHARE = {"validating_files": 0.15, "queued": 0.10, "running": 0.75}

MODEL_ALIASES = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
FINE_TUNABLE_MODELS = set(MODEL_ALIASES.values()) | {
    "gpt-4o-2024-11-20", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613",
    "babbage-002", "davinci-002"}

MIN_EXAMPLES = 10
MAX_TOKENS_PER_EXAMPLE = 65536
# trained_tokens counts each example as (cookbook estimate - 2) tokens.
TOKENS_PER_EXAMPLE_ADJUST = -2
MAX_PART_BYTES = 64 * 1024 * 1024
MAX_UPLOAD_BYTES = 8 * 1024 * 1024 * 1024
HANG_MAX_S = 300
MAX_REQUEST_LOG = 10000

CREATE_JOB_KEYS = ("model", "training_file", "validation_file", "suffix", "seed",
                   "metadata", "integrations", "hyperparameters", "method")
HYPERPARAMETER_KEYS = {"supervised": ("batch_size", "learning_rate_multiplier", "n_epochs"),
                       "dpo": ("batch_size", "learning_rate_multiplier", "n_epochs", "beta")}
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}

MSG_NO_KEY = ("You didn't provide an API key. You need to provide your API key in an "
              "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
              "or as the password field (with blank username) if you're accessing the API "
              "from your browser and are prompted for a username. You can obtain an API key "
              "from https://platform.openai.com/account/api-keys.")
MSG_BAD_KEY = ("Incorrect API key provided: sk-***. You can find your API key at "
               "https://platform.openai.com/account/api-keys.")
MSG_BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON. If you have trouble figuring "
                "out how to fix this, please contact us through our help center at "
                "help.openai.com.)")

FAULT_ACTION_KEYS = {"status", "retry_after", "retry_after_ms", "code", "error", "headers",
                     "delay_ms", "slow_body_ms", "hang", "reset", "reset_after_processing",
                     "malformed_json", "truncated_json"}
CANNED_FAULT_ERRORS = {
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing "
                 "details. For more information on this error, read the docs: "
                 "https://platform.openai.com/docs/guides/error-codes/api-errors.")
BAD_GATEWAY_HTML = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare"
                    b"</center>\r\n</body>\r\n</html>\r\n")


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def new_id(prefix, length=24):
    """Return a random OpenAI-style identifier such as 'ftjob-AbC...'."""
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(random.choice(alphabet) for _ in range(length))


def key_fingerprint(key):
    """Return a loggable stand-in for an API key: never the key itself."""
    if not key:
        return None
    return "sk-***" + hashlib.sha256(key.encode()).hexdigest()[:8]


def json_type_name(value):
    """Name a JSON value's type the way OpenAI's error messages do."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_kind(value, kind):
    """Tell whether a decoded JSON value is of the JSON-schema type 'kind'."""
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    return checks[kind](value)


def approx_tokens(text):
    """Approximate a tiktoken count as one token per four UTF-8 bytes."""
    return (len(text.encode("utf-8")) + 3) // 4


def reject_json_constant(name):
    """json.loads hook: NaN and Infinity are not JSON, so refuse them."""
    raise ValueError("invalid JSON constant " + name)


def decode_json(raw):
    """Decode strict JSON bytes; raise ValueError when they are not JSON."""
    return json.loads(raw.decode("utf-8"), parse_constant=reject_json_constant)


# --------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------

class ApiError(Exception):
    """An OpenAI-style error answer.  violation=True marks a request that did
    not follow the protocol; such requests are listed in /_mock/state."""

    def __init__(self, status, message, err_type="invalid_request_error", param=None,
                 code=None, violation=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param
        self.code = code
        self.violation = violation

    def body(self):
        """The JSON error document."""
        return {"error": {"message": self.message, "type": self.err_type,
                          "param": self.param, "code": self.code}}


def violation(message, param=None, code=None, status=400):
    """Build the 400 answer for a request that breaks the protocol."""
    return ApiError(status, message, param=param, code=code, violation=True)


def not_found(message, param=None):
    """Build a 404 answer for an unknown object id."""
    return ApiError(404, message, param=param)


class Response:
    """What the dispatcher hands to the HTTP layer to send."""

    def __init__(self, status, body, content_type="application/json", headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def json_response(obj, status=200):
    """Serialise obj as the JSON body of a response."""
    return Response(status, json.dumps(obj, indent=2).encode("utf-8"))


def error_response(err):
    """Turn an ApiError into a Response."""
    return json_response(err.body(), err.status)


# --------------------------------------------------------------------------
# Requests: parameters, JSON bodies, multipart bodies
# --------------------------------------------------------------------------

class Request:
    """One parsed HTTP request, plus the soft violations found while serving it."""

    def __init__(self, method, target, headers, body):
        parts = urlsplit(target)
        self.method = method
        self.target = target
        self.path = parts.path
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.api_key = None
        self.soft_violations = []
        self.logged_body = None

    def content_type(self):
        """The media type and parameters of the Content-Type header."""
        return parse_header_value(self.headers.get("Content-Type", ""))

    def check_query(self, allowed, allowed_pattern=None):
        """Note unknown or repeated query parameters as violations (OpenAI ignores them)."""
        seen = set()
        for name, _ in self.query:
            if name in seen and not (allowed_pattern and re.fullmatch(allowed_pattern, name)):
                self.soft_violations.append(f"query parameter '{name}' given twice")
            seen.add(name)
            if name not in allowed and not (allowed_pattern and re.fullmatch(allowed_pattern, name)):
                self.soft_violations.append(f"unknown query parameter '{name}'")

    def query_value(self, name):
        """The value of query parameter 'name', or None."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    def int_query(self, name, default, low, high):
        """An integer query parameter in [low, high]; 400 when malformed."""
        raw = self.query_value(name)
        if raw is None:
            return default
        if not re.fullmatch(r"[0-9]+", raw) or not low <= int(raw) <= high:
            raise violation(f"Invalid value for '{name}': expected an integer between "
                            f"{low} and {high}, got '{raw}'.", param=name, code="invalid_value")
        return int(raw)

    def json_object(self):
        """The body as a JSON object; 400 if the content type or syntax is wrong."""
        media, _ = self.content_type()
        if media != "application/json":
            shown = self.headers.get("Content-Type", "")
            raise violation(f"Unsupported content type: '{shown}'. This API method only accepts "
                            f"'application/json' requests, but you specified the header "
                            f"'Content-Type: {shown}'. Please try again with a supported "
                            f"content type.", code="unsupported_content_type")
        try:
            body = decode_json(self.body)
        except ValueError:
            raise violation(MSG_BAD_JSON) from None
        if not isinstance(body, dict):
            raise violation("Invalid type for request body: expected an object, but got "
                            f"{json_type_name(body)} instead.", code="invalid_type")
        self.logged_body = body
        return body

    def expect_no_body(self):
        """For body-less POSTs (cancel, pause, resume): accept nothing or '{}'."""
        if not self.body.strip():
            return
        try:
            if decode_json(self.body) == {}:
                return
        except ValueError:
            pass
        self.soft_violations.append("this endpoint takes no request body")

    def multipart(self):
        """The body as {field name: Part}; 400 if it is not valid multipart/form-data."""
        media, params = self.content_type()
        if media != "multipart/form-data":
            raise violation("Invalid Content-Type header, expected multipart/form-data "
                            f"(got '{self.headers.get('Content-Type', '')}').",
                            code="unsupported_content_type")
        boundary = params.get("boundary")
        if not boundary:
            raise violation("multipart/form-data request without a boundary parameter.")
        try:
            parts = parse_multipart(self.body, boundary)
        except ValueError as exc:
            raise violation(f"Could not parse multipart form: {exc}.") from None
        fields = {}
        for part in parts:
            if part.name in fields:
                raise violation(f"Multipart field '{part.name}' given more than once.",
                                param=part.name)
            fields[part.name] = part
        self.logged_body = {name: p.describe() for name, p in fields.items()}
        return fields


def split_header_params(value):
    """Split a header value on ';' outside double quotes."""
    items, current, quoted, i = [], [], False, 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\" and i + 1 < len(value):
            current.append(value[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    items.append("".join(current))
    return items


def parse_header_value(value):
    """Parse 'type; a=1; b="q \\" s"' into ('type', {'a': '1', 'b': 'q " s'})."""
    items = split_header_params(value)
    params = {}
    for item in items[1:]:
        if "=" not in item:
            continue
        name, raw = item.split("=", 1)
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.strip().lower()] = raw
    if "filename*" in params and "'" in params["filename*"]:
        charset, _, encoded = params["filename*"].split("'", 2)
        params["filename"] = unquote(encoded, encoding=charset or "utf-8")
    return items[0].strip().lower(), params


class Part:
    """One part of a multipart/form-data body."""

    def __init__(self, name, filename, content_type, data):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data

    def text(self):
        """The part's data as text (form fields)."""
        return self.data.decode("utf-8", errors="replace")

    def describe(self):
        """A short summary for the request log."""
        if self.filename is None:
            return self.text()[:200]
        return {"filename": self.filename, "bytes": len(self.data)}


def parse_part(raw):
    """Parse one multipart part (headers, blank line, data) into a Part."""
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        raise ValueError("part without a header block")
    headers = {}
    for line in raw[:head_end].split(b"\r\n"):
        if b":" not in line:
            raise ValueError("malformed part header line")
        name, value = line.split(b":", 1)
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8")
    disposition, params = parse_header_value(headers.get("content-disposition", ""))
    if disposition != "form-data" or not params.get("name"):
        raise ValueError("part without 'Content-Disposition: form-data; name=...'")
    return Part(params["name"], params.get("filename"), headers.get("content-type"),
                raw[head_end + 4:])


def parse_multipart(body, boundary):
    """Split a multipart body into Parts (RFC 7578); raise ValueError if malformed."""
    delimiter = b"--" + boundary.encode("latin-1")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise ValueError("boundary not found")
        pos = first + 2 + len(delimiter)
    parts = []
    while True:
        if body[pos:pos + 2] == b"--":
            if not parts:
                raise ValueError("no parts")
            return parts
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise ValueError("bad delimiter line")
        start = line_end + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ValueError("closing boundary missing")
        parts.append(parse_part(body[start:end]))
        pos = end + 2 + len(delimiter)


def check_value(value, kinds, param):
    """Check that a body field has one of the JSON types in kinds; return it."""
    if any(is_kind(value, kind) for kind in kinds):
        return value
    wanted = " or ".join({"string": "a string", "integer": "an integer", "number": "a number",
                          "object": "an object", "array": "an array", "boolean": "a boolean",
                          "null": "null"}[k] for k in kinds)
    raise violation(f"Invalid type for '{param}': expected {wanted}, but got "
                    f"{json_type_name(value)} instead.", param=param, code="invalid_type")


def check_range(value, low, high, param, low_exclusive=False):
    """Check low <= value <= high (or low < value) for a number field."""
    too_low = value <= low if low_exclusive else value < low
    if too_low or (high is not None and value > high):
        bound = f"greater than {low}" if low_exclusive else f"at least {low}"
        upper = f" and at most {high}" if high is not None else ""
        raise violation(f"Invalid value for '{param}': expected a number {bound}{upper}, "
                        f"got {value}.", param=param, code="invalid_value")


def check_string_length(value, low, high, param):
    """Check a string field's length bounds."""
    if len(value) < low:
        raise violation(f"Invalid '{param}': string too short. Expected a string with minimum "
                        f"length {low}, but got a string with length {len(value)} instead.",
                        param=param, code="string_below_min_length")
    if len(value) > high:
        raise violation(f"Invalid '{param}': string too long. Expected a string with maximum "
                        f"length {high}, but got a string with length {len(value)} instead.",
                        param=param, code="string_above_max_length")


def check_keys(obj, allowed, param):
    """Reject keys of a body object that the schema does not define."""
    for key in obj:
        if key not in allowed:
            name = f"{param}.{key}" if param else key
            raise violation(f"Unrecognized request argument supplied: {name}", param=name,
                            code="unknown_parameter")


def check_metadata(metadata):
    """Validate the Metadata object: <=16 string pairs, key<=64, value<=512."""
    if metadata is None:
        return None
    check_value(metadata, ("object",), "metadata")
    if len(metadata) > 16:
        raise violation("Invalid 'metadata': too many properties. Expected an object with at "
                        f"most 16 properties, but got {len(metadata)} instead.",
                        param="metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        check_string_length(key, 1, 64, "metadata")
        check_value(value, ("string",), f"metadata.{key}")
        check_string_length(value, 0, 512, f"metadata.{key}")
    return dict(metadata)


def check_integrations(integrations):
    """Validate the optional W&B integrations list."""
    if integrations is None:
        return None
    check_value(integrations, ("array",), "integrations")
    for i, item in enumerate(integrations):
        param = f"integrations[{i}]"
        check_value(item, ("object",), param)
        check_keys(item, ("type", "wandb"), param)
        if item.get("type") != "wandb" or not isinstance(item.get("wandb"), dict):
            raise violation(f"Invalid value for '{param}': only type 'wandb' with a 'wandb' "
                            "object is supported.", param=param, code="invalid_value")
        check_keys(item["wandb"], ("project", "name", "entity", "tags"), param + ".wandb")
        check_value(item["wandb"].get("project"), ("string",), param + ".wandb.project")
    return integrations


def check_hyperparameters(hp, method_type, param):
    """Validate a hyperparameters object; return it with 'auto' for omitted keys."""
    keys = HYPERPARAMETER_KEYS[method_type]
    if hp is None:
        hp = {}
    check_value(hp, ("object",), param)
    check_keys(hp, keys, param)
    limits = {"batch_size": ("integer", 1, 256, False), "n_epochs": ("integer", 1, 50, False),
              "learning_rate_multiplier": ("number", 0, None, True),
              "beta": ("number", 0, 2, True)}
    resolved = {}
    for key in keys:
        value = hp.get(key, "auto")
        if value != "auto":
            kind, low, high, exclusive = limits[key]
            check_value(value, (kind,), f"{param}.{key}")
            check_range(value, low, high, f"{param}.{key}", exclusive)
        resolved[key] = value
    return resolved


def check_method(method, legacy_hp):
    """Validate 'method' (and the deprecated top-level 'hyperparameters').
    Return (method type, requested hyperparameters with 'auto' defaults)."""
    if method is None:
        return "supervised", check_hyperparameters(legacy_hp, "supervised", "hyperparameters")
    check_value(method, ("object",), "method")
    check_keys(method, ("type", "supervised", "dpo", "reinforcement"), "method")
    method_type = method.get("type")
    if method_type not in ("supervised", "dpo", "reinforcement"):
        raise violation("Invalid value for 'method.type': expected one of 'supervised', 'dpo', "
                        f"'reinforcement', got {json.dumps(method_type)}.", param="method.type",
                        code="invalid_value")
    if method_type == "reinforcement":
        raise ApiError(400, "Reinforcement fine-tuning is not supported by this mock.",
                       param="method.type", code="unsupported_method")
    for other in ("supervised", "dpo", "reinforcement"):
        if other != method_type and other in method:
            raise violation(f"'method.{other}' given for a job of type '{method_type}'.",
                            param=f"method.{other}", code="invalid_value")
    if legacy_hp is not None:
        raise violation("Specify hyperparameters in 'method' only, not also in the deprecated "
                        "top-level 'hyperparameters'.", param="hyperparameters")
    sub = method.get(method_type) or {}
    check_value(sub, ("object",), f"method.{method_type}")
    check_keys(sub, ("hyperparameters",), f"method.{method_type}")
    return method_type, check_hyperparameters(sub.get("hyperparameters"), method_type,
                                              f"method.{method_type}.hyperparameters")


def resolve_model(model):
    """Map an alias to its dated snapshot; 400 if the model cannot be fine-tuned."""
    if model in MODEL_ALIASES:
        return MODEL_ALIASES[model]
    if model in FINE_TUNABLE_MODELS or model.startswith("ft:"):
        return model
    raise ApiError(400, f"Model {model} is not available for fine-tuning or does not exist.",
                   param="model", code="model_not_available")


# --------------------------------------------------------------------------
# Training data: validation and token estimates
# --------------------------------------------------------------------------

def check_message(message, roles):
    """Describe what is wrong with one chat message, or return None."""
    if not isinstance(message, dict):
        return "Input should be a valid dictionary"
    if "role" not in message:
        return "Discriminator 'role' is missing in value"
    role = message["role"]
    if role not in roles:
        expected = ", ".join(f"'{r}'" for r in roles)
        return (f"Input tag {json.dumps(role)} found using 'role' does not match any of the "
                f"expected tags: {expected}")
    extra = sorted(set(message) - MESSAGE_KEYS[role])
    if extra:
        return f"Extra inputs are not permitted: '{extra[0]}'"
    content = message.get("content")
    calls = message.get("tool_calls") or message.get("function_call")
    if content is None and not (role == "assistant" and calls):
        return "Field 'content' is required"
    if content is not None and not isinstance(content, (str, list)):
        return "Input should be a valid string ('content')"
    if "weight" in message and (message["weight"] not in (0, 1)
                                or isinstance(message["weight"], bool)):
        return "Input should be 0 or 1 ('weight')"
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return "Field 'tool_call_id' is required"
    return None


def check_chat_example(example):
    """Describe what is wrong with one SFT chat example, or return None."""
    if not isinstance(example, dict):
        return "Input should be a valid dictionary"
    extra = sorted(set(example) - {"messages", "tools", "parallel_tool_calls", "functions"})
    if extra:
        return f"Extra inputs are not permitted: '{extra[0]}'"
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Field 'messages' is required and must be a non-empty list"
    for j, message in enumerate(messages, 1):
        problem = check_message(message, CHAT_ROLES)
        if problem:
            return f"message {j} {problem}"
    if not any(m.get("role") == "assistant" for m in messages):
        return "Example has no assistant message"
    return None


def check_preference_example(example):
    """Describe what is wrong with one DPO preference example, or return None."""
    if not isinstance(example, dict):
        return "Input should be a valid dictionary"
    extra = sorted(set(example) - {"input", "preferred_output", "non_preferred_output"})
    if extra:
        return f"Extra inputs are not permitted: '{extra[0]}'"
    conversation = example.get("input")
    if not isinstance(conversation, dict) or not isinstance(conversation.get("messages"), list) \
            or not conversation["messages"]:
        return "Field 'input.messages' is required and must be a non-empty list"
    extra = sorted(set(conversation) - {"messages", "tools", "parallel_tool_calls"})
    if extra:
        return f"Extra inputs are not permitted: 'input.{extra[0]}'"
    for j, message in enumerate(conversation["messages"], 1):
        problem = check_message(message, CHAT_ROLES[:5])
        if problem:
            return f"input message {j} {problem}"
    for field in ("preferred_output", "non_preferred_output"):
        output = example.get(field)
        if not isinstance(output, list) or len(output) != 1 \
                or not isinstance(output[0], dict) or output[0].get("role") != "assistant" \
                or not isinstance(output[0].get("content"), str):
            return f"'{field}' must hold exactly one assistant message with string content"
    return None


def example_messages(example, method_type):
    """The messages of an example that count towards its tokens."""
    if method_type == "dpo":
        return (example["input"]["messages"] + example["preferred_output"]
                + example["non_preferred_output"])
    return example["messages"]


def cookbook_tokens(messages):
    """Token estimate of the cookbook's num_tokens_from_messages, with approx_tokens."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            text = value if isinstance(value, str) else json.dumps(value)
            total += approx_tokens(text)
            if key == "name":
                total += 1
    return total


class DataReport:
    """Outcome of validating a JSONL training or validation file."""

    def __init__(self, n_examples=0, tokens=None, problem=None):
        self.n_examples = n_examples
        self.tokens = tokens or []
        self.problem = problem


def validate_jsonl(data, method_type):
    """Validate a JSONL file for method_type; return a DataReport.  problem is the
    text of the first fault ('Example 4, message 1 Discriminator ...')."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return DataReport(problem="Invalid file format: the file is not valid UTF-8")
    lines = text.split("\n")
    if lines and lines[-1].strip() == "":
        lines.pop()
    check = check_preference_example if method_type == "dpo" else check_chat_example
    report = DataReport(n_examples=len(lines))
    for i, line in enumerate(lines, 1):
        try:
            example = json.loads(line, parse_constant=reject_json_constant)
        except ValueError:
            report.problem = f"Example {i} Invalid JSON on line {i}"
            return report
        problem = check(example)
        if problem:
            report.problem = f"Example {i}, {problem}"
            return report
        tokens = cookbook_tokens(example_messages(example, method_type))
        report.tokens.append(max(1, min(MAX_TOKENS_PER_EXAMPLE, tokens)
                                 + TOKENS_PER_EXAMPLE_ADJUST))
    return report


def default_epochs(n_examples):
    """The cookbook's default-epoch rule (TARGET_EPOCHS 3, 100..25000 examples)."""
    if n_examples * 3 < 100:
        return min(25, 100 // n_examples)
    if n_examples * 3 > 25000:
        return max(1, 25000 // n_examples)
    return 3


# --------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------

class Job:
    """A simulated fine-tuning job: the public fields plus the clock that drives it.
    Time in a phase is counted in simulated seconds (wall seconds x speed)."""

    def __init__(self, seq, body, model, method_type, hyperparameters, now, duration):
        self.id = new_id("ftjob-")
        self.seq = seq
        self.created_at = int(now)
        self.model = model
        self.training_file = body["training_file"]
        self.validation_file = body.get("validation_file")
        self.suffix = body.get("suffix")
        self.seed = body["seed"] if body.get("seed") is not None else random.randint(0, 2**31 - 1)
        self.metadata = body.get("metadata")
        self.integrations = body.get("integrations")
        self.method_type = method_type
        self.hyperparameters = hyperparameters
        self.status = "validating_files"
        self.error = None
        self.finished_at = None
        self.fine_tuned_model = None
        self.trained_tokens = None
        self.result_files = []
        self.events = []
        self.checkpoints = []
        self.duration = duration
        self.speed = None
        self.elapsed = dict.fromkeys(ACTIVE_PHASES, 0.0)
        self.last_tick = now
        self.step = 0
        self.total_steps = None
        self.steps_per_epoch = None
        self.example_tokens = []
        self.has_validation_metrics = False
        self.pending_failure = None
        self.forced_status = None
        self.forced_until = None

    # --- events --------------------------------------------------------------
    def add_event(self, store, message, level="info", event_type="message", data=None):
        """Append an event (kept in creation order; listed newest first)."""
        store.seq += 1
        self.events.append({"object": "fine_tuning.job.event", "id": new_id("ftevent-"),
                            "created_at": int(store.now()), "level": level,
                            "message": message, "data": data or {}, "type": event_type,
                            "_seq": store.seq})

    # --- clock ---------------------------------------------------------------
    def visible_status(self):
        """The status callers see (an injected unknown status wins)."""
        return self.forced_status or self.status

    def phase_length(self, phase):
        """Simulated seconds the job spends in phase."""
        return PHASE_SHARE[phase] * self.duration

    def remaining_seconds(self):
        """Simulated seconds until the job would succeed, from now."""
        if self.status not in ACTIVE_PHASES:
            return 0.0
        later = ACTIVE_PHASES[ACTIVE_PHASES.index(self.status):]
        return sum(self.phase_length(p) - self.elapsed[p] for p in later)

    def tick(self, store, now):
        """Advance the job by the wall time since the last tick, times its speed."""
        speed = self.speed if self.speed is not None else store.config["speed"]
        seconds = max(0.0, now - self.last_tick) * speed
        self.last_tick = now
        self.run_for(store, seconds)

    def run_for(self, store, seconds):
        """Advance the job by 'seconds' simulated seconds, crossing phases as needed."""
        if self.pending_failure and self.status not in TERMINAL_STATUSES:
            code, message = self.pending_failure
            self.fail(store, code, message, param=None, finished=True)
            return
        if self.forced_status:
            if self.forced_until is None or store.now() < self.forced_until:
                return
            self.forced_status = self.forced_until = None
        while seconds > 0 and self.status in ACTIVE_PHASES:
            left = self.phase_length(self.status) - self.elapsed[self.status]
            if seconds < left:
                self.elapsed[self.status] += seconds
                if self.status == "running":
                    self.emit_steps(store, self.steps_done())
                return
            seconds -= left
            self.elapsed[self.status] += left
            self.finish_phase(store)

    def steps_done(self):
        """How many training steps the running phase has completed."""
        share = self.elapsed["running"] / self.phase_length("running")
        return min(self.total_steps, int(share * self.total_steps))

    def finish_phase(self, store):
        """Move from the current phase to the next one."""
        if self.status == "validating_files":
            self.finish_validation(store)
        elif self.status == "queued":
            self.status = "running"
            if self.step == 0:
                self.add_event(store, "Fine-tuning job started")
        elif self.status == "running":
            self.emit_steps(store, self.total_steps)
            self.succeed(store)

    def fail(self, store, code, message, param, finished):
        """End the job as failed with error {code, message, param}."""
        self.status = "failed"
        self.forced_status = self.forced_until = self.pending_failure = None
        self.error = {"code": code, "message": message, "param": param}
        self.finished_at = int(store.now()) if finished else None
        self.add_event(store, message, level="error")

    # --- validation ----------------------------------------------------------
    def finish_validation(self, store):
        """Validate the files (as OpenAI does after upload) and queue or fail the job."""
        training = self.check_file(store, self.training_file, "training_file")
        if training is None:
            return
        if training.n_examples < MIN_EXAMPLES:
            self.fail(store, "invalid_n_examples",
                      f"Training file has {training.n_examples} example(s), but must have at "
                      f"least {MIN_EXAMPLES} examples", "training_file", finished=False)
            return
        if self.validation_file and self.check_file(store, self.validation_file,
                                                    "validation_file") is None:
            return
        self.has_validation_metrics = bool(self.validation_file)
        self.example_tokens = training.tokens
        self.resolve_hyperparameters(training.n_examples)
        if store.config["event_quirks"]:
            self.add_event(store, "Moderation checks for the training file passed",
                           event_type="moderation_checks", data={"blocked": False})
        self.add_event(store, "Files validated, moving job to queued state")
        self.status = "queued"

    def check_file(self, store, file_id, param):
        """Validate one input file; fail the job and return None if it is bad."""
        code = "invalid_" + param
        data = store.read_file_bytes(file_id)
        if data is None:
            self.fail(store, code, f"File {file_id} was deleted before validation", param, False)
            return None
        report = validate_jsonl(data, self.method_type)
        if report.problem:
            self.fail(store, code, report.problem, param, finished=False)
            return None
        return report

    def resolve_hyperparameters(self, n_examples):
        """Replace 'auto' hyperparameters by concrete values and size the run."""
        hp = self.hyperparameters
        if hp["n_epochs"] == "auto":
            hp["n_epochs"] = default_epochs(n_examples)
        if hp["batch_size"] == "auto":
            hp["batch_size"] = max(1, min(256, math.ceil(n_examples * 0.002)))
        if hp["learning_rate_multiplier"] == "auto":
            hp["learning_rate_multiplier"] = 1.8
        if hp.get("beta") == "auto":
            hp["beta"] = 0.1
        self.steps_per_epoch = math.ceil(n_examples / hp["batch_size"])
        self.total_steps = hp["n_epochs"] * self.steps_per_epoch

    # --- training --------------------------------------------------------------
    def metrics_at(self, step):
        """Deterministic training metrics for one step (dict of the event 'data')."""
        rng = random.Random(f"{self.seed}:{step}")
        share = step / self.total_steps
        loss = 1.8 * math.exp(-3.5 * share) + 0.08 + rng.uniform(-0.04, 0.04)
        accuracy = min(1.0, 0.55 + 0.42 * (1 - math.exp(-3.5 * share)) + rng.uniform(-0.03, 0.03))
        data = {"step": step, "total_steps": self.total_steps,
                "train_loss": round(loss, 6), "train_mean_token_accuracy": round(accuracy, 6)}
        if self.has_validation_metrics:
            every = max(1, self.total_steps // 10)
            if step % every == 0:
                data["valid_loss"] = round(loss * 1.15 + rng.uniform(0, 0.05), 6)
                data["valid_mean_token_accuracy"] = round(accuracy - 0.03, 6)
            if step == self.total_steps:
                data["full_valid_loss"] = round(loss * 1.2, 6)
                data["full_valid_mean_token_accuracy"] = round(accuracy - 0.04, 6)
        return data

    def emit_steps(self, store, upto):
        """Emit metrics events for steps after self.step up to 'upto' (at most ~100
        metrics events per job: intermediate steps are sampled)."""
        stride = max(1, math.ceil(self.total_steps / 100))
        for step in range(self.step + 1, upto + 1):
            if step % stride and step != self.total_steps:
                continue
            data = self.metrics_at(step)
            message = f"Step {step}/{self.total_steps}: training loss={data['train_loss']:.2f}"
            if "valid_loss" in data:
                message += f", validation loss={data['valid_loss']:.2f}"
            if "full_valid_loss" in data:
                message += f", full validation loss={data['full_valid_loss']:.2f}"
            self.add_event(store, message, event_type="metrics", data=data)
        self.step = max(self.step, upto)

    def results_csv(self):
        """The fine-tune-results CSV: one row per step, empty cells without validation."""
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        for step in range(1, self.total_steps + 1):
            data = self.metrics_at(step)
            rows.append(",".join([str(step), str(data["train_loss"]),
                                  str(data["train_mean_token_accuracy"]),
                                  str(data.get("valid_loss", "")),
                                  str(data.get("valid_mean_token_accuracy", ""))]))
        return ("\n".join(rows) + "\n").encode()

    def succeed(self, store):
        """Finish the job: model name, tokens, checkpoints, results file, events."""
        hp = self.hyperparameters
        self.fine_tuned_model = f"ft:{self.model}:{ORG_NAME}:{self.suffix or ''}:{new_id('', 8)}"
        self.trained_tokens = hp["n_epochs"] * sum(self.example_tokens)
        first_kept = max(1, hp["n_epochs"] - 2)
        for epoch in range(first_kept, hp["n_epochs"] + 1):
            self.add_checkpoint(store, epoch * self.steps_per_epoch,
                                final=epoch == hp["n_epochs"])
        self.add_event(store, f"New fine-tuned model created: {self.fine_tuned_model}")
        if store.config["event_quirks"]:
            self.add_event(store, "Evaluating model against our usage policies",
                           event_type="moderation_checks", data={"passed": True})
        results = store.add_file("step_metrics.csv", "fine-tune-results", self.results_csv())
        self.result_files = [results["id"]]
        self.status = "succeeded"
        self.finished_at = int(store.now())
        self.add_event(store, "The job has successfully completed")

    def add_checkpoint(self, store, step, final):
        """Record a checkpoint at 'step' and its event."""
        name = self.fine_tuned_model if final else f"{self.fine_tuned_model}:ckpt-step-{step}"
        data = self.metrics_at(step)
        metrics = {k: data[k] for k in ("step", "train_loss", "train_mean_token_accuracy")}
        if self.has_validation_metrics:
            metrics["full_valid_loss"] = round(data["train_loss"] * 1.2, 6)
            metrics["full_valid_mean_token_accuracy"] = round(
                data["train_mean_token_accuracy"] - 0.04, 6)
        store.seq += 1
        self.checkpoints.append({"object": "fine_tuning.job.checkpoint", "id": new_id("ftckpt_"),
                                 "created_at": int(store.now()),
                                 "fine_tuned_model_checkpoint": name,
                                 "fine_tuning_job_id": self.id, "step_number": step,
                                 "metrics": metrics, "_seq": store.seq})
        self.add_event(store, f"Checkpoint created at step {step} with Snapshot ID: {name}")

    # --- rendering ---------------------------------------------------------------
    def render(self, store):
        """The FineTuningJob JSON object (with quirks when configured)."""
        quirks = store.config["event_quirks"]
        hp = {k: (float(v) if quirks and k in ("n_epochs", "batch_size") and v != "auto" else v)
              for k, v in self.hyperparameters.items()}
        speed = self.speed if self.speed is not None else store.config["speed"]
        estimated = None
        if self.visible_status() == "running" and speed > 0:
            estimated = int(store.now() + self.remaining_seconds() / speed)
        job = {
            "object": "fine_tuning.job", "id": self.id, "model": self.model,
            "created_at": self.created_at, "finished_at": self.finished_at,
            "fine_tuned_model": self.fine_tuned_model, "organization_id": ORG_ID,
            "result_files": list(self.result_files), "status": self.visible_status(),
            "validation_file": self.validation_file, "training_file": self.training_file,
            "hyperparameters": None if self.method_type == "dpo" else
            {k: hp[k] for k in HYPERPARAMETER_KEYS["supervised"]},
            "trained_tokens": self.trained_tokens,
            "error": self.error if self.error else ({} if quirks else None),
            "seed": self.seed, "estimated_finish": estimated,
            "integrations": self.integrations, "metadata": self.metadata,
            "method": {"type": self.method_type, self.method_type: {"hyperparameters": hp}},
        }
        if quirks:
            job.update(user_provided_suffix=self.suffix, usage_metrics=None,
                       shared_with_openai=False)
        return job

    def render_event(self, event, store):
        """One event as JSON (quirks: reals for counters, an extra field)."""
        out = {k: v for k, v in event.items() if k != "_seq"}
        if store.config["event_quirks"]:
            out["data"] = {k: (float(v) if k in ("step", "total_steps") else v)
                           for k, v in out["data"].items()}
            out["trace_id"] = None
        return out

    def internals(self):
        """Simulation details shown only by /_mock/state."""
        return {"speed": self.speed, "duration_s": self.duration, "step": self.step,
                "total_steps": self.total_steps, "example_tokens": self.example_tokens,
                "elapsed": self.elapsed, "internal_status": self.status}


# --------------------------------------------------------------------------
# Store: all mutable state, behind one lock
# --------------------------------------------------------------------------

class Store:
    """Files, uploads, jobs, faults, the request log and violations."""

    def __init__(self, state_dir, defaults, log_file):
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.defaults = defaults
        self.log_file = log_file
        self.reset()

    def now(self):
        """Wall-clock time (a method so the clock has one source)."""
        return time.time()

    def reset(self):
        """Forget everything and return to the command-line configuration."""
        with self.lock:
            self.seq = 0
            self.files = {}
            self.uploads = {}
            self.parts = {}
            self.jobs = {}
            self.faults = []
            self.requests = []
            self.violations = []
            self.config = dict(self.defaults)
            blob_dir = os.path.join(self.state_dir, "blobs")
            shutil.rmtree(blob_dir, ignore_errors=True)
            os.makedirs(blob_dir)

    # --- files -------------------------------------------------------------------
    def blob_path(self, blob_id):
        """Where the bytes of a file or upload part live in the state dir."""
        return os.path.join(self.state_dir, "blobs", blob_id)

    def add_file(self, filename, purpose, data):
        """Store a new file and return its OpenAIFile object."""
        with self.lock:
            self.seq += 1
            file_obj = {"object": "file", "id": new_id("file-", 22), "purpose": purpose,
                        "filename": filename, "bytes": len(data),
                        "created_at": int(self.now()), "expires_at": None,
                        "status": "processed", "status_details": None, "_seq": self.seq}
            with open(self.blob_path(file_obj["id"]), "wb") as fh:
                fh.write(data)
            self.files[file_obj["id"]] = file_obj
            return file_obj

    def get_file(self, file_id):
        """The file object, or a 404."""
        file_obj = self.files.get(file_id)
        if file_obj is None:
            raise not_found(f"No such File object: {file_id}", param="id")
        return file_obj

    def read_file_bytes(self, file_id):
        """The stored bytes of a file, or None if it was deleted."""
        if file_id not in self.files:
            return None
        with open(self.blob_path(file_id), "rb") as fh:
            return fh.read()

    def delete_file(self, file_id):
        """Remove a file and its bytes."""
        self.get_file(file_id)
        del self.files[file_id]
        os.unlink(self.blob_path(file_id))

    # --- jobs ----------------------------------------------------------------------
    def get_job(self, job_id):
        """The job, advanced to now, or a 404."""
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"Could not find fine-tuning job: {job_id}",
                            param="fine_tuning_job_id")
        job.tick(self, self.now())
        return job

    def all_jobs(self):
        """Every job advanced to now, newest first."""
        now = self.now()
        for job in self.jobs.values():
            job.tick(self, now)
        return sorted(self.jobs.values(), key=lambda j: -j.seq)

    # --- faults ----------------------------------------------------------------------
    def take_fault(self, method, path):
        """Consume and return the action of the first rule matching this request."""
        with self.lock:
            for rule in self.faults:
                match = rule["match"]
                if rule["times"] == 0:
                    continue
                if match.get("method") and match["method"].upper() != method:
                    continue
                if match.get("path_regex") and not re.search(match["path_regex"], path):
                    continue
                if rule["times"] > 0:
                    rule["times"] -= 1
                rule["hits"] += 1
                return dict(rule["action"])
        return None

    # --- request log ------------------------------------------------------------------
    def record(self, req, status, fault, request_id, elapsed_ms):
        """Log one request in memory (for /_mock) and in the log file."""
        entry = {"method": req.method, "path": req.target, "status": status,
                 "ts": round(self.now(), 3), "request_id": request_id,
                 "fault": fault, "auth": key_fingerprint(req.api_key), "body": req.logged_body}
        with self.lock:
            self.requests.append(entry)
            del self.requests[:-MAX_REQUEST_LOG]
            for message in req.soft_violations:
                self.add_violation(req, status, message)
        self.log(f"{req.method} {req.target} -> {status if status else fault} "
                 f"{elapsed_ms}ms auth={entry['auth']} {request_id}")

    def add_violation(self, req, status, message):
        """Remember a protocol violation for the tests to assert on."""
        with self.lock:
            self.violations.append({"method": req.method, "path": req.target, "status": status,
                                    "message": message, "ts": round(self.now(), 3)})

    def log(self, line):
        """Append a line to the log (never containing an API key)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.lock:
            self.log_file.write(f"{stamp} {line}\n")
            self.log_file.flush()

    def requests_in_last_minute(self):
        """Count of recent requests, for the x-ratelimit-remaining-* headers."""
        cutoff = self.now() - 60
        with self.lock:
            return sum(1 for r in self.requests if r["ts"] >= cutoff)

    # --- snapshot ----------------------------------------------------------------------
    def snapshot(self):
        """Everything, for GET /_mock/state."""
        with self.lock:
            jobs = []
            for job in self.all_jobs():
                item = job.render(self)
                item["_mock"] = job.internals()
                jobs.append(item)
            return {"jobs": jobs, "files": [public(f) for f in self.files.values()],
                    "uploads": [public(u) for u in self.uploads.values()],
                    "faults": self.faults, "config": self.config,
                    "requests": self.requests, "violations": self.violations}


def public(obj):
    """Copy of a stored object without the '_'-prefixed bookkeeping keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def paginate(items, after, limit):
    """Slice items (already in list order) after the one with id 'after'."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    return items[:limit], len(items) > limit


# --------------------------------------------------------------------------
# OpenAI API handlers: each takes (store, req, **path params) -> Response
# --------------------------------------------------------------------------

def api_create_file(store, req):
    """POST /v1/files (multipart: file, purpose, expires_after[...])."""
    fields = req.multipart()
    for name in fields:
        if name not in ("file", "purpose", "expires_after[anchor]", "expires_after[seconds]"):
            raise violation(f"Unrecognized request argument supplied: {name}", param=name,
                            code="unknown_parameter")
    if "purpose" not in fields:
        raise violation("Missing required parameter: 'purpose'.", param="purpose",
                        code="missing_required_parameter")
    if "file" not in fields or fields["file"].filename is None:
        raise violation("Missing required parameter: 'file'.", param="file",
                        code="missing_required_parameter")
    purpose = fields["purpose"].text()
    if purpose not in FILE_PURPOSES:
        raise violation(f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'",
                        param="purpose", code="invalid_value")
    upload = fields["file"]
    check_fine_tune_filename(upload.filename, purpose)
    return json_response(public(store.add_file(upload.filename, purpose, upload.data)))


def check_fine_tune_filename(filename, purpose):
    """Fine-tuning accepts only .jsonl files."""
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        raise violation("Invalid file format for Fine-Tuning API. Must be .jsonl",
                        param="file", code="invalid_file_format")


def api_list_files(store, req):
    """GET /v1/files?purpose=&limit=&order=&after=."""
    req.check_query(("purpose", "limit", "order", "after"))
    limit = req.int_query("limit", 10000, 1, 10000)
    order = req.query_value("order") or "desc"
    if order not in ("asc", "desc"):
        raise violation("Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
    purpose = req.query_value("purpose")
    files = sorted(store.files.values(), key=lambda f: f["_seq"], reverse=order == "desc")
    files = [public(f) for f in files if purpose is None or f["purpose"] == purpose]
    page, has_more = paginate(files, req.query_value("after"), limit)
    return json_response({"object": "list", "data": page,
                          "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None, "has_more": has_more})


def api_get_file(store, req, file_id):
    """GET /v1/files/{file_id}."""
    req.check_query(())
    return json_response(public(store.get_file(file_id)))


def api_delete_file(store, req, file_id):
    """DELETE /v1/files/{file_id}."""
    req.check_query(())
    store.delete_file(file_id)
    return json_response({"id": file_id, "object": "file", "deleted": True})


def api_file_content(store, req, file_id):
    """GET /v1/files/{file_id}/content: raw bytes; results CSVs base64 by default."""
    req.check_query(())
    file_obj = store.get_file(file_id)
    data = store.read_file_bytes(file_id)
    if file_obj["purpose"] == "fine-tune-results" and store.config["result_csv_base64"]:
        data = base64.b64encode(data)
    return Response(200, data, content_type="application/octet-stream")


def api_create_upload(store, req):
    """POST /v1/uploads {filename, purpose, bytes, mime_type, expires_after?}."""
    body = req.json_object()
    check_keys(body, ("filename", "purpose", "bytes", "mime_type", "expires_after"), "")
    for key in ("filename", "purpose", "bytes", "mime_type"):
        if key not in body:
            raise violation(f"Missing required parameter: '{key}'.", param=key,
                            code="missing_required_parameter")
    check_value(body["filename"], ("string",), "filename")
    check_value(body["bytes"], ("integer",), "bytes")
    check_range(body["bytes"], 1, MAX_UPLOAD_BYTES, "bytes")
    if body["purpose"] not in UPLOAD_PURPOSES:
        raise violation(f"Invalid value for 'purpose': {json.dumps(body['purpose'])}.",
                        param="purpose", code="invalid_value")
    if body["mime_type"] not in UPLOAD_MIME_TYPES:
        raise violation(f"Invalid value for 'mime_type': {json.dumps(body['mime_type'])} is "
                        "not supported.", param="mime_type", code="invalid_value")
    check_fine_tune_filename(body["filename"], body["purpose"])
    with store.lock:
        now = int(store.now())
        upload = {"id": new_id("upload_"), "object": "upload", "bytes": body["bytes"],
                  "created_at": now, "filename": body["filename"], "purpose": body["purpose"],
                  "status": "pending", "expires_at": now + 3600, "file": None, "_parts": []}
        store.uploads[upload["id"]] = upload
    return json_response(public(upload))


def pending_upload(store, upload_id):
    """The upload if it exists and still accepts parts, else 404/400."""
    upload = store.uploads.get(upload_id)
    if upload is None:
        raise not_found(f"No such Upload object: {upload_id}", param="upload_id")
    if upload["status"] != "pending":
        raise ApiError(400, f"Upload {upload_id} is already {upload['status']}.",
                       param="upload_id")
    return upload


def api_add_upload_part(store, req, upload_id):
    """POST /v1/uploads/{id}/parts (multipart field 'data')."""
    fields = req.multipart()
    check_keys(fields, ("data",), "")
    if "data" not in fields:
        raise violation("Missing required parameter: 'data'.", param="data",
                        code="missing_required_parameter")
    data = fields["data"].data
    if len(data) > MAX_PART_BYTES:
        raise violation("Upload parts may be at most 64 MB.", param="data")
    with store.lock:
        upload = pending_upload(store, upload_id)
        part = {"id": new_id("part_"), "object": "upload.part", "created_at": int(store.now()),
                "upload_id": upload_id}
        with open(store.blob_path(part["id"]), "wb") as fh:
            fh.write(data)
        store.parts[part["id"]] = dict(part, _bytes=len(data))
        upload["_parts"].append(part["id"])
    return json_response(part)


def api_complete_upload(store, req, upload_id):
    """POST /v1/uploads/{id}/complete {part_ids, md5?}: assemble the file."""
    body = req.json_object()
    check_keys(body, ("part_ids", "md5"), "")
    if "part_ids" not in body:
        raise violation("Missing required parameter: 'part_ids'.", param="part_ids",
                        code="missing_required_parameter")
    check_value(body["part_ids"], ("array",), "part_ids")
    check_value(body.get("md5"), ("string", "null"), "md5")
    with store.lock:
        upload = pending_upload(store, upload_id)
        for part_id in body["part_ids"]:
            if part_id not in upload["_parts"]:
                raise ApiError(400, f"Part {part_id} does not belong to upload {upload_id}.",
                               param="part_ids")
        data = b""
        for part_id in body["part_ids"]:
            with open(store.blob_path(part_id), "rb") as fh:
                data += fh.read()
        if len(data) != upload["bytes"]:
            raise ApiError(400, f"The number of bytes uploaded ({len(data)}) does not match "
                           f"the number of bytes expected ({upload['bytes']}).",
                           param="part_ids")
        if body.get("md5") and hashlib.md5(data).hexdigest() != body["md5"].lower():
            raise ApiError(400, "The md5 checksum of the uploaded parts does not match "
                           "the md5 provided.", param="md5")
        upload["file"] = public(store.add_file(upload["filename"], upload["purpose"], data))
        upload["status"] = "completed"
    return json_response(public(upload))


def api_cancel_upload(store, req, upload_id):
    """POST /v1/uploads/{id}/cancel."""
    req.expect_no_body()
    with store.lock:
        upload = pending_upload(store, upload_id)
        upload["status"] = "cancelled"
    return json_response(public(upload))


def require_fine_tune_file(store, file_id, param):
    """A job's input file must exist and have purpose fine-tune."""
    file_obj = store.files.get(file_id)
    if file_obj is None:
        raise ApiError(400, f"invalid {param}: {file_id}", param=param)
    if file_obj["purpose"] != "fine-tune":
        raise ApiError(400, f"File {file_id} has purpose '{file_obj['purpose']}', but "
                       "fine-tuning requires purpose 'fine-tune'.", param=param)


def api_create_job(store, req):
    """POST /v1/fine_tuning/jobs."""
    body = req.json_object()
    check_keys(body, CREATE_JOB_KEYS, "")
    for key in ("model", "training_file"):
        if key not in body:
            raise violation(f"Missing required parameter: '{key}'.", param=key,
                            code="missing_required_parameter")
    check_value(body["model"], ("string",), "model")
    check_value(body["training_file"], ("string",), "training_file")
    check_value(body.get("validation_file"), ("string", "null"), "validation_file")
    if check_value(body.get("suffix"), ("string", "null"), "suffix") is not None:
        check_string_length(body["suffix"], 1, 64, "suffix")
    if check_value(body.get("seed"), ("integer", "null"), "seed") is not None:
        check_range(body["seed"], 0, 2147483647, "seed")
    metadata = check_metadata(body.get("metadata"))
    check_integrations(body.get("integrations"))
    method_type, hyperparameters = check_method(body.get("method"), body.get("hyperparameters"))
    model = resolve_model(body["model"])
    with store.lock:
        require_fine_tune_file(store, body["training_file"], "training_file")
        if body.get("validation_file"):
            require_fine_tune_file(store, body["validation_file"], "validation_file")
        store.seq += 1
        job = Job(store.seq, dict(body, metadata=metadata), model, method_type, hyperparameters,
                  store.now(), store.config["duration_s"])
        store.jobs[job.id] = job
        job.add_event(store, f"Created fine-tuning job: {job.id}")
        files = f"training file: {job.training_file}"
        if job.validation_file:
            files += f" and validation file: {job.validation_file}"
        job.add_event(store, f"Validating {files}")
        return json_response(job.render(store))


def metadata_filter(req):
    """The metadata[k]=v filters of a job listing, or 'null' for metadata=null."""
    if req.query_value("metadata") == "null":
        return "null"
    filters = {}
    for name, value in req.query:
        match = re.fullmatch(r"metadata\[(.+)\]", name)
        if match:
            filters[match.group(1)] = value
    return filters


def api_list_jobs(store, req):
    """GET /v1/fine_tuning/jobs?after=&limit=&metadata[k]=v (newest first)."""
    req.check_query(("after", "limit", "metadata"), allowed_pattern=r"metadata\[.+\]")
    limit = req.int_query("limit", 20, 1, 100)
    wanted = metadata_filter(req)
    jobs = []
    for job in store.all_jobs():
        if wanted == "null":
            if job.metadata:
                continue
        elif any((job.metadata or {}).get(k) != v for k, v in wanted.items()):
            continue
        jobs.append(job.render(store))
    page, has_more = paginate(jobs, req.query_value("after"), limit)
    return json_response({"object": "list", "data": page, "has_more": has_more})


def api_get_job(store, req, job_id):
    """GET /v1/fine_tuning/jobs/{id}."""
    req.check_query(())
    return json_response(store.get_job(job_id).render(store))


def api_list_events(store, req, job_id):
    """GET /v1/fine_tuning/jobs/{id}/events?after=&limit= (newest first)."""
    req.check_query(("after", "limit"))
    limit = req.int_query("limit", 20, 1, 1000)
    job = store.get_job(job_id)
    events = [job.render_event(e, store) for e in reversed(job.events)]
    page, has_more = paginate(events, req.query_value("after"), limit)
    return json_response({"object": "list", "data": page, "has_more": has_more})


def api_list_checkpoints(store, req, job_id):
    """GET /v1/fine_tuning/jobs/{id}/checkpoints?after=&limit= (newest first)."""
    req.check_query(("after", "limit"))
    limit = req.int_query("limit", 10, 1, 1000)
    job = store.get_job(job_id)
    checkpoints = [public(c) for c in reversed(job.checkpoints)]
    page, has_more = paginate(checkpoints, req.query_value("after"), limit)
    return json_response({"object": "list", "data": page,
                          "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None, "has_more": has_more})


def api_cancel_job(store, req, job_id):
    """POST /v1/fine_tuning/jobs/{id}/cancel."""
    req.expect_no_body()
    job = store.get_job(job_id)
    if job.status in TERMINAL_STATUSES:
        raise ApiError(400, f"Job {job_id} has already {job.status} and cannot be cancelled "
                       f"(status: {job.status}).", param="fine_tuning_job_id",
                       code="job_already_finished")
    job.status = "cancelled"
    job.forced_status = job.forced_until = job.pending_failure = None
    job.add_event(store, "Fine-tuning job cancelled")
    return json_response(job.render(store))


def api_pause_job(store, req, job_id):
    """POST /v1/fine_tuning/jobs/{id}/pause: only running jobs can pause."""
    req.expect_no_body()
    job = store.get_job(job_id)
    if job.visible_status() != "running":
        raise ApiError(400, f"Job {job_id} cannot be paused: only running jobs can be paused "
                       f"(status: {job.visible_status()}).", param="fine_tuning_job_id")
    job.status = "paused"
    job.add_event(store, "Fine-tuning job paused")
    return json_response(job.render(store))


def api_resume_job(store, req, job_id):
    """POST /v1/fine_tuning/jobs/{id}/resume: paused -> queued -> running."""
    req.expect_no_body()
    job = store.get_job(job_id)
    if job.visible_status() != "paused":
        raise ApiError(400, f"Job {job_id} cannot be resumed: it is not paused "
                       f"(status: {job.visible_status()}).", param="fine_tuning_job_id")
    job.status = "queued"
    job.elapsed["queued"] = 0.0
    job.add_event(store, "Fine-tuning job resumed")
    return json_response(job.render(store))


ID = r"(?P<{}>[^/]+)"
API_ROUTES = [
    ("POST", r"/v1/files", api_create_file),
    ("GET", r"/v1/files", api_list_files),
    ("GET", r"/v1/files/" + ID.format("file_id"), api_get_file),
    ("DELETE", r"/v1/files/" + ID.format("file_id"), api_delete_file),
    ("GET", r"/v1/files/" + ID.format("file_id") + "/content", api_file_content),
    ("POST", r"/v1/uploads", api_create_upload),
    ("POST", r"/v1/uploads/" + ID.format("upload_id") + "/parts", api_add_upload_part),
    ("POST", r"/v1/uploads/" + ID.format("upload_id") + "/complete", api_complete_upload),
    ("POST", r"/v1/uploads/" + ID.format("upload_id") + "/cancel", api_cancel_upload),
    ("POST", r"/v1/fine_tuning/jobs", api_create_job),
    ("GET", r"/v1/fine_tuning/jobs", api_list_jobs),
    ("GET", r"/v1/fine_tuning/jobs/" + ID.format("job_id"), api_get_job),
    ("GET", r"/v1/fine_tuning/jobs/" + ID.format("job_id") + "/events", api_list_events),
    ("GET", r"/v1/fine_tuning/jobs/" + ID.format("job_id") + "/checkpoints",
     api_list_checkpoints),
    ("POST", r"/v1/fine_tuning/jobs/" + ID.format("job_id") + "/cancel", api_cancel_job),
    ("POST", r"/v1/fine_tuning/jobs/" + ID.format("job_id") + "/pause", api_pause_job),
    ("POST", r"/v1/fine_tuning/jobs/" + ID.format("job_id") + "/resume", api_resume_job),
]


def authenticate(store, req):
    """Check 'Authorization: Bearer <key>' against the accepted keys."""
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, MSG_NO_KEY, violation=True)
    req.api_key = header[7:].strip()
    keys = store.config["keys"]
    accepted = req.api_key in keys if keys else req.api_key.startswith("sk-")
    if not accepted:
        raise ApiError(401, MSG_BAD_KEY, code="invalid_api_key")


def serve_api(store, req):
    """Authenticate, route and run one OpenAI API request; always returns a Response."""
    try:
        authenticate(store, req)
        for method, pattern, handler in API_ROUTES:
            match = re.fullmatch(pattern, req.path)
            if match and method == req.method:
                with store.lock:
                    return handler(store, req, **match.groupdict())
        raise ApiError(404, f"Invalid URL ({req.method} {req.path})", violation=True)
    except ApiError as err:
        if err.violation:
            req.soft_violations.append(err.message)
        return error_response(err)


# --------------------------------------------------------------------------
# Control API (/_mock, no auth)
# --------------------------------------------------------------------------

class ControlError(Exception):
    """A bad control request: answered 400/404 with {"error": message}."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def control_body(req, kind=dict):
    """The JSON body of a control request (an object unless kind says otherwise)."""
    try:
        body = decode_json(req.body) if req.body.strip() else kind()
    except ValueError:
        raise ControlError("body is not valid JSON") from None
    if not isinstance(body, kind):
        raise ControlError(f"body must be a JSON {kind.__name__}")
    return body


def check_fault_rule(rule):
    """Validate one fault rule and fill in defaults."""
    if not isinstance(rule, dict) or not isinstance(rule.get("action"), dict):
        raise ControlError("each fault rule needs an 'action' object")
    unknown = set(rule["action"]) - FAULT_ACTION_KEYS
    if unknown:
        raise ControlError(f"unknown fault action keys: {sorted(unknown)}")
    match = rule.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"method", "path_regex"}:
        raise ControlError("'match' may hold only 'method' and 'path_regex'")
    try:
        re.compile(match.get("path_regex") or "")
    except re.error as exc:
        raise ControlError(f"bad path_regex: {exc}") from None
    times = rule.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool):
        raise ControlError("'times' must be an integer (-1 = unlimited)")
    return {"match": match, "times": times, "action": rule["action"], "hits": 0}


def control_faults(store, req):
    """GET lists, POST appends (a rule or a list of rules), DELETE clears."""
    if req.method == "POST":
        body = control_body(req, (list, dict))
        rules = [check_fault_rule(r) for r in (body if isinstance(body, list) else [body])]
        with store.lock:
            store.faults.extend(rules)
    elif req.method == "DELETE":
        with store.lock:
            store.faults.clear()
    return {"faults": store.faults}


def control_config(store, req):
    """GET shows, POST changes: speed, duration_s, result_csv_base64, event_quirks, keys."""
    if req.method == "POST":
        body = control_body(req)
        checks = {"speed": lambda v: is_kind(v, "number") and v >= 0,
                  "duration_s": lambda v: is_kind(v, "number") and v > 0,
                  "result_csv_base64": lambda v: is_kind(v, "boolean"),
                  "event_quirks": lambda v: is_kind(v, "boolean"),
                  "keys": lambda v: v is None or (isinstance(v, list)
                                                  and all(isinstance(k, str) for k in v))}
        for key, value in body.items():
            if key not in checks or not checks[key](value):
                raise ControlError(f"bad config key or value: {key}")
        with store.lock:
            store.config.update(body)
    return store.config


def control_job(store, req, job_id, action):
    """POST /_mock/jobs/{id}/{fail|unknown_status|config|advance}."""
    body = control_body(req)
    with store.lock:
        job = store.jobs.get(job_id)
        if job is None:
            raise ControlError(f"no job {job_id}", 404)
        job.tick(store, store.now())
        if action == "fail":
            job.pending_failure = (body.get("code", "internal_error"),
                                   body.get("message", "Fine-tuning job failed (injected)."))
        elif action == "unknown_status":
            status = body.get("status")
            job.forced_status = status
            duration = body.get("duration_ms")
            job.forced_until = store.now() + duration / 1000 if status and duration else None
        elif action == "config":
            speed = body.get("speed")
            if speed is not None and not (is_kind(speed, "number") and speed >= 0):
                raise ControlError("'speed' must be a number >= 0 or null")
            job.speed = speed
        elif action == "advance":
            advance_job(store, job, body)
        else:
            raise ControlError(f"unknown job action {action}", 404)
        job.tick(store, store.now())
        item = job.render(store)
        item["_mock"] = job.internals()
        return item


def advance_job(store, job, body):
    """Move a job forward: {"seconds": S} simulated seconds, or {"to": status}."""
    if "seconds" in body:
        job.run_for(store, float(body["seconds"]))
        return
    target = body.get("to")
    if target not in ACTIVE_PHASES + TERMINAL_STATUSES:
        raise ControlError("advance needs {'seconds': S} or {'to': status}")
    while job.visible_status() != target and job.status in ACTIVE_PHASES \
            and not job.forced_status:
        job.run_for(store, job.phase_length(job.status) - job.elapsed[job.status] + 1e-9)


def serve_control(store, req):
    """Run one /_mock request; returns a Response."""
    try:
        path = req.path
        job_match = re.fullmatch(r"/_mock/jobs/([^/]+)/([a-z_]+)", path)
        if job_match and req.method == "POST":
            result = control_job(store, req, job_match.group(1), job_match.group(2))
        elif path == "/_mock/faults" and req.method in ("GET", "POST", "DELETE"):
            result = control_faults(store, req)
        elif path == "/_mock/config" and req.method in ("GET", "POST"):
            result = control_config(store, req)
        elif path == "/_mock/state" and req.method == "GET":
            result = store.snapshot()
        elif path == "/_mock/requests" and req.method == "GET":
            with store.lock:
                result = {"requests": list(store.requests)}
        elif path == "/_mock/reset" and req.method == "POST":
            store.reset()
            result = {"reset": True}
        else:
            raise ControlError(f"no control endpoint {req.method} {path}", 404)
        return json_response(result)
    except ControlError as err:
        return json_response({"error": str(err)}, err.status)


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------

class BodyError(Exception):
    """The request body could not be read (bad framing)."""


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads the body (Content-Length or chunked),
    applies any fault rule, and answers."""

    protocol_version = "HTTP/1.1"
    server_version = "mock-openai/1.0"
    sys_version = ""

    def version_string(self):
        """The Server header value."""
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 (signature fixed by the base class)
        """Silence the default stderr access log; Store.record logs instead."""

    def do_GET(self):
        """Every method goes through serve()."""
        self.serve()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    # --- body ------------------------------------------------------------------------
    def read_body(self):
        """Read the request body whatever its framing."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise BodyError("bad Content-Length")
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            raise BodyError("body shorter than Content-Length")
        return data

    def read_chunked(self):
        """Read a chunked body (RFC 9112 section 7.1), ignoring extensions and trailers."""
        chunks = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError("bad chunk size line") from None
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) != b"\r\n":
                raise BodyError("bad chunk framing")
            chunks.append(chunk)
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    # --- main flow ---------------------------------------------------------------
    def serve(self):
        """Handle one request: control API, or fault + OpenAI API."""
        store = self.server.store
        started = time.monotonic()
        try:
            body = self.read_body()
        except BodyError as exc:
            self.close_connection = True
            req = Request(self.command, self.path, self.headers, b"")
            req.soft_violations.append(f"unreadable request body: {exc}")
            self.finish_request(req, error_response(violation(str(exc))), started, None)
            return
        req = Request(self.command, self.path, self.headers, body)
        if req.path.startswith("/_mock"):
            self.send(serve_control(store, req), None, started)
            return
        action = store.take_fault(req.method, req.path)
        if action is None:
            self.finish_request(req, serve_api(store, req), started, None)
        else:
            self.serve_with_fault(req, action, started)

    def serve_with_fault(self, req, action, started):
        """Serve a request that matched a fault rule."""
        store = self.server.store
        name = fault_name(action)
        if action.get("delay_ms"):
            time.sleep(action["delay_ms"] / 1000)
        if action.get("hang"):
            store.record(req, None, name, None, self.elapsed_ms(started))
            self.hang_until_client_leaves()
            return
        if action.get("reset"):
            store.record(req, None, name, None, self.elapsed_ms(started))
            self.reset_connection()
            return
        response = fault_response(action) or serve_api(store, req)
        if action.get("reset_after_processing"):
            store.record(req, response.status, name, None, self.elapsed_ms(started))
            self.reset_connection()
            return
        if action.get("malformed_json"):
            response.body = b"{," + response.body[1:]
        if action.get("truncated_json"):
            response.body = response.body[:max(1, len(response.body) // 2)]
        self.finish_request(req, response, started, name, action.get("slow_body_ms"))

    def finish_request(self, req, response, started, fault, slow_body_ms=None):
        """Record the request, then send the response.

        Recording first means a client that has its answer always finds the request (and any
        violation it made) in /_mock/state; recording afterwards raced with fast clients.
        """
        request_id = "req_" + os.urandom(16).hex()
        self.server.store.record(req, response.status, fault, request_id,
                                 self.elapsed_ms(started))
        self.send(response, req, started, slow_body_ms, request_id)

    @staticmethod
    def elapsed_ms(started):
        """Milliseconds since 'started'."""
        return int((time.monotonic() - started) * 1000)

    # --- sending -----------------------------------------------------------------
    def send(self, response, req, started, slow_body_ms=None, request_id=None):
        """Write status, OpenAI-style headers and body; return the x-request-id."""
        request_id = request_id or "req_" + os.urandom(16).hex()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if req is not None:
                for name, value in self.openai_headers(request_id, started).items():
                    self.send_header(name, value)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.write_body(response.body, slow_body_ms)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return request_id

    def openai_headers(self, request_id, started):
        """The debugging and rate-limit headers OpenAI puts on every response."""
        used = self.server.store.requests_in_last_minute()
        return {"x-request-id": request_id,
                "openai-processing-ms": str(self.elapsed_ms(started)),
                "openai-version": OPENAI_VERSION, "openai-organization": ORG_NAME,
                "x-ratelimit-limit-requests": "10000",
                "x-ratelimit-remaining-requests": str(max(0, 9999 - used)),
                "x-ratelimit-reset-requests": "6ms",
                "x-ratelimit-limit-tokens": "50000000",
                "x-ratelimit-remaining-tokens": "49999000",
                "x-ratelimit-reset-tokens": "1s"}

    def write_body(self, body, slow_body_ms):
        """Write the body at once, or trickle it over slow_body_ms milliseconds."""
        if not slow_body_ms or not body:
            self.wfile.write(body)
            return
        pieces = min(10, len(body))
        size = math.ceil(len(body) / pieces)
        for offset in range(0, len(body), size):
            self.wfile.write(body[offset:offset + size])
            time.sleep(slow_body_ms / 1000 / pieces)

    # --- connection faults -------------------------------------------------------------
    def reset_connection(self):
        """Abort the TCP connection: SO_LINGER 0 makes close() send RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.rfile.close()
        self.close_connection = True

    def hang_until_client_leaves(self):
        """Send nothing until the client closes the connection (or HANG_MAX_S)."""
        deadline = time.monotonic() + HANG_MAX_S
        sock = self.connection
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if not readable:
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    break
            except OSError:
                break
            time.sleep(0.2)
        self.close_connection = True


def fault_name(action):
    """A short label for the request log."""
    for key in ("hang", "reset", "reset_after_processing", "malformed_json", "truncated_json",
                "slow_body_ms"):
        if action.get(key):
            return key
    if "status" in action:
        return f"status_{action['status']}"
    return "delay_ms" if action.get("delay_ms") else "fault"


def fault_response(action):
    """The injected error answer for a status fault, or None."""
    status = action.get("status")
    if status is None:
        return None
    headers = dict(action.get("headers") or {})
    if action.get("retry_after") is not None:
        headers["Retry-After"] = str(action["retry_after"])
    if action.get("retry_after_ms") is not None:
        headers["retry-after-ms"] = str(action["retry_after_ms"])
    if status == 502 and "error" not in action:
        return Response(502, BAD_GATEWAY_HTML, content_type="text/html", headers=headers)
    if "error" in action:
        body = {"error": action["error"]}
    elif action.get("code") == "insufficient_quota":
        body = ApiError(status, QUOTA_MESSAGE, "insufficient_quota",
                        code="insufficient_quota").body()
    else:
        message, err_type, code = CANNED_FAULT_ERRORS.get(
            status, ("Injected error.", "invalid_request_error", None))
        body = ApiError(status, message, err_type, code=action.get("code", code)).body()
    response = json_response(body, status)
    response.headers = headers
    return response


class MockServer(ThreadingHTTPServer):
    """Threaded HTTP server holding the Store."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, store):
        super().__init__(address, Handler)
        self.store = store
        self.stopping = threading.Event()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parse_args(argv):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--state-dir", required=True, help="where file bytes are kept")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--duration", type=float, default=6.0,
                        help="simulated seconds from job creation to success")
    parser.add_argument("--keys", help="comma-separated accepted API keys (default: any sk-*)")
    parser.add_argument("--log", help="request log file (default: stderr)")
    return parser.parse_args(argv)


def write_port_file(path, port):
    """Write the port atomically so a reader never sees a partial file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, path)


def stop_on_signal(signum, frame):
    """SIGTERM handler: leave serve_forever() the way Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv=None):
    """Start the server and serve until SIGTERM/SIGINT."""
    args = parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    log_file = open(args.log, "a") if args.log else sys.stderr
    defaults = {"speed": args.speed, "duration_s": args.duration, "result_csv_base64": True,
                "event_quirks": False,
                "keys": [k for k in args.keys.split(",") if k] if args.keys else None}
    store = Store(args.state_dir, defaults, log_file)
    server = MockServer((args.host, args.port), store)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"listening on {port}", flush=True)
    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
