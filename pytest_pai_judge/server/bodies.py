"""Loading JSON request bodies safely: what cannot be judged gets a documented 4xx, never a 500.

Why a module of its own: every JSON body the server takes (a chat request, a batch line's body,
a batch to create) must get the same answer for the same bad input, and none may reach code that
breaks on it. Bodies over :data:`MAX_BODY_BYTES` are refused unread (413); beyond size, three things
break there:

* nesting: ``json.loads`` raises RecursionError some ~1,000 levels down, and anything that walks
  a value recursively (``repr`` in an error message, ``json.dumps`` into SQLite) fails sooner or
  later. Bodies nested deeper than :data:`MAX_JSON_DEPTH` are 402 InvalidBody ("json load request
  body error", the spec's row for a body that cannot be loaded as JSON).
* lone UTF-16 surrogates (``"\\ud800"`` as a JSON escape): valid JSON grammar, but not Unicode
  text -- no UTF-8 exists for them, so hashing the judge content, storing it or sending it back
  as UTF-8 raises UnicodeEncodeError. In the judge content (``messages``) that is the spec's 400
  ContentError (the content is unusable; the JSON did load, so InvalidBody would be untrue),
  elsewhere 400 InvalidParameter naming the field. Raw surrogate bytes (``ED A0 80``) are not
  UTF-8 at all: 402 InvalidBody.
* echoing: error messages of the spec quote fields (``answer1: {answer1}``); a response holding a
  lone surrogate is sent with ``\\u`` escapes (:func:`json_text`), which every JSON parser reads.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from ..protocol import (
    JUDGE_FIELDS,
    ChatCall,
    ProtocolError,
    content_error,
    invalid_body,
    invalid_parameter,
    parse_chat_body,
)

MAX_JSON_DEPTH = 64
"""Objects and arrays nested deeper than this (the body itself is level 1) make a body 402 InvalidBody.
A judge request needs 6 levels (body, messages, message, content, part, json), the vendor's nested
message shape a few more."""

MAX_BODY_BYTES = 32 * 1024 * 1024
"""A JSON request body (a chat request, a batch to create) larger than this is refused with 413 unread."""

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""In a decoded ``str`` a surrogate is always a lone one: a valid pair decodes to one character."""


def request_too_large() -> ProtocolError:
    return ProtocolError(413, "RequestTooLarge", f"Request body exceeds {MAX_BODY_BYTES} bytes.")


async def read_body(request: Request) -> bytes:
    """The request body, refusing bodies over :data:`MAX_BODY_BYTES` without reading them whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise request_too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise request_too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def load_json(raw: bytes) -> Any:
    """The JSON value of a request body; 402 InvalidBody when it is not JSON text or is too deep.

    The encoding is detected as ``json.loads`` does (UTF-8, -16, -32, BOM), but decoded strictly:
    ``json.loads(bytes)`` would let raw surrogate bytes through.
    """
    try:
        value = json.loads(raw.decode(json.detect_encoding(raw)))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise invalid_body() from None
    if too_deep(value):
        raise invalid_body()
    return value


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests objects / arrays more than ``limit`` levels (iteratively, so any depth is safe)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            below.extend(item for item in items if isinstance(item, (dict, list)))
        level = below
    return False


def parse_chat(body: Any, models: dict[str, int] | None = None) -> ChatCall:
    """:func:`~pytest_pai_judge.protocol.parse_chat_body` (the spec's rules, in the spec's order), preceded by
    the depth limit and followed by the surrogate check. Raises :class:`~pytest_pai_judge.protocol.ProtocolError`."""
    if too_deep(body):
        raise invalid_body()
    call = parse_chat_body(body, models)
    check_unicode(body)
    return call


def check_unicode(body: Any) -> None:
    """Raise the 400 for the first lone surrogate in ``body`` (see the module docstring for which code)."""
    found = find_lone_surrogate(body)
    if found is None:
        return
    path, text = found
    index = _LONE_SURROGATE.search(text)
    position = f"\\u{ord(index.group()):04x} at character {index.start()}" if index else "in a key"
    where = json_path(path)
    detail = (f"{where} contains a lone UTF-16 surrogate ({position}), which is not Unicode text; send text as "
              "UTF-8, a character beyond U+FFFF as a surrogate pair")
    if path and path[0] == "messages":
        raise content_error(_judge_field(path) or "messages", detail)
    raise invalid_parameter(_escaped(path[0]) if path else "body", detail)


def find_lone_surrogate(value: Any) -> tuple[list[str | int], str] | None:
    """The path to the first string (or key) of ``value`` holding a lone surrogate, and that string."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # the common case, at C speed
        return None
    except UnicodeEncodeError:
        pass
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return path, item
        elif isinstance(item, dict):
            for key in reversed(list(item)):
                if _LONE_SURROGATE.search(key):
                    return [*path, key], key
                stack.append(([*path, key], item[key]))
        elif isinstance(item, list):
            stack.extend(([*path, i], sub) for i, sub in reversed(list(enumerate(item))))
    return None


def _judge_field(path: list[str | int]) -> str | None:
    """The judge field (``question``, ``answer`` ...) a path inside ``messages`` leads to, if any."""
    for before, name in zip(path, path[1:]):
        if before == "json" and name in JUDGE_FIELDS:
            return str(name)
    return None


def _escaped(key: str | int) -> str:
    """A key as ASCII text (a lone surrogate as ``\\ud800``), safe in any message."""
    return json.dumps(key)[1:-1] if isinstance(key, str) else str(key)


def json_path(path: list[str | int]) -> str:
    """``["messages", 0, "content"]`` -> ``messages[0].content``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{_escaped(part)}" if out else _escaped(part))
    return out or "body"


def json_text(value: Any, **dumps_options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, unless a string holds a lone surrogate: then with ``\\u``
    escapes (``ensure_ascii=True``), so the text can always be encoded as UTF-8 -- stored, sent, written."""
    text = json.dumps(value, ensure_ascii=False, **dumps_options)
    if _LONE_SURROGATE.search(text) is None:
        return text
    return json.dumps(value, ensure_ascii=True, **dumps_options)

