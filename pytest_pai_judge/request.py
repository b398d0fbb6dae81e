"""Judge requests: what a test asks the judge, as one value that builds the HTTP body (and its JSON form).

A :class:`JudgeRequest` is the first step of the data flow (request → cache / client → verdict
→ expectation → report). It is validated with the same rules as the server
(:func:`pytest_pai_judge.protocol.parse_chat_body`), so a bad request fails before any network;
its cache key is :func:`pytest_pai_judge.cache.cache_key` of its body.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from . import protocol

Kind = Literal["single", "pairwise", "custom"]

GENERATION_PARAMS = ("temperature", "top_p", "max_tokens", "n", "seed", "stop", "response_format",
                     "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "user", "logit_bias",
                     "tools", "tool_choice", "parallel_tool_calls", "service_tier")
"""Generation parameters of the spec's table that a judge call may carry (stream is the client's business)."""


@dataclass(slots=True)
class JudgeRequest:
    """One judge call. Mutable on purpose: ``pytest_judge_request`` hooks may amend it before it is sent."""

    kind: Kind
    model: str
    fields: dict[str, Any] = field(default_factory=dict)
    """The spec's ``json`` fields (question, answer, answer1, answer2, ref_answer, scene, ...); None = not sent."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Custom-template calls only: ordinary chat messages judged as given."""
    params: dict[str, Any] = field(default_factory=dict)
    """Generation parameters; only those given are sent (plus ``max_tokens``, see
    :data:`protocol.VERDICT_MAX_TOKENS`), so the server's defaults apply otherwise."""

    @classmethod
    def single(cls, question: str, answer: str, *, model: str = protocol.DEFAULT_MODEL, **fields_and_params: Any
               ) -> JudgeRequest:
        return cls._judge("single", model, {"question": question, "answer": answer}, fields_and_params)

    @classmethod
    def pairwise(cls, question: str, answer1: str, answer2: str, *, model: str = protocol.DEFAULT_MODEL,
                 **fields_and_params: Any) -> JudgeRequest:
        return cls._judge("pairwise", model, {"question": question, "answer1": answer1, "answer2": answer2},
                          fields_and_params)

    @classmethod
    def custom(cls, messages: list[dict[str, Any]] | str, *, model: str = protocol.DEFAULT_MODEL,
               **params: Any) -> JudgeRequest:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return cls("custom", model, messages=[dict(m) for m in messages], params=_with_defaults(_only_params(params)))

    @classmethod
    def _judge(cls, kind: Kind, model: str, base: dict[str, Any], extra: dict[str, Any]) -> JudgeRequest:
        fields = dict(base)
        params: dict[str, Any] = {}
        for name, value in extra.items():
            if name in protocol.JUDGE_FIELDS:
                fields[name] = value
            elif name in GENERATION_PARAMS:
                params[name] = value
            else:
                raise TypeError(f"unknown judge field or generation parameter {name!r}; judge fields are "
                                f"{', '.join(protocol.JUDGE_FIELDS)}; parameters are {', '.join(GENERATION_PARAMS)}")
        for name, value in fields.items():  # the judge reads text: a number here is a data bug, say so plainly
            if value is not None and name != "max_score" and not isinstance(value, str):
                numeric = isinstance(value, (int, float))
                advice = " (convert it with str(), e.g. a numeric CSV column)" if numeric else ""
                raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r:.80}{advice}")
        return cls(kind, model, fields={k: v for k, v in fields.items() if v is not None},
                   params=_with_defaults({k: v for k, v in params.items() if v is not None}))

    # ------------------------------------------------------------------ wire format

    def body(self) -> dict[str, Any]:
        """The ``/v1/chat/completions`` body, exactly as PAI expects it (also a batch line's ``body``)."""
        body: dict[str, Any] = {"model": self.model}
        if self.kind == "custom":
            body["messages"] = copy.deepcopy(self.messages)
        else:
            body["messages"] = [{"role": "user", "content": [
                {"mode": self.kind, "type": "json", "json": dict(self.fields)}]}]
        body.update({k: v for k, v in self.params.items() if v is not None})
        return body

    def validate(self, models: dict[str, int] | None = None) -> protocol.ChatCall:
        """Apply the server's rules; raises :class:`protocol.ProtocolError` with the server's code."""
        if models is None:
            # The real service may offer models we do not know of; only the local server's list is fixed.
            models = {self.model: 1 << 30}
        return protocol.parse_chat_body(self.body(), models)

    @property
    def max_score(self) -> int:
        value = self.fields.get("max_score")
        return int(value) if value not in (None, "") else protocol.DEFAULT_MAX_SCORE

    @property
    def json_mode(self) -> bool:
        return (self.params.get("response_format") or {}).get("type") == "json_object"

    @property
    def question(self) -> str | None:
        if self.kind != "custom":
            return self.fields.get("question")
        users = [m.get("content") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for xdist workers, spool files and the batch ledger."""
        return {"kind": self.kind, "model": self.model, "fields": self.fields, "messages": self.messages,
                "params": self.params}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> JudgeRequest:
        """The request a ``/v1/chat/completions`` body (or a batch line's body) was made from."""
        body = dict(body)
        model = str(body.pop("model", protocol.DEFAULT_MODEL))
        messages = body.pop("messages", [])
        content = messages[0].get("content") if len(messages) == 1 and isinstance(messages[0], dict) else None
        if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict) \
                and content[0].get("type") == "json" and content[0].get("mode") in ("single", "pairwise"):
            return cls(content[0]["mode"], model, fields=dict(content[0].get("json") or {}), params=body)
        return cls("custom", model, messages=list(messages), params=body)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeRequest:
        return cls(data["kind"], data["model"], dict(data.get("fields") or {}), list(data.get("messages") or []),
                   dict(data.get("params") or {}))

    def describe(self) -> str:
        """A short label for failure messages and reports."""
        scene = self.fields.get("scene")
        return f"model={self.model}" + (f", scene={scene}" if scene else "")


def judge_identity(base_url: str) -> str:
    """The part of a base URL that names the judge service for the cache: scheme-less host:port."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"judge base URL must start with http:// or https:// and name a host, got {base_url!r}")
    return parts.netloc.lower()


def _only_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(GENERATION_PARAMS)
    if unknown:
        raise TypeError(f"unknown generation parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(GENERATION_PARAMS)}")
    return {k: v for k, v in params.items() if v is not None}


def _with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """The plugin's own defaults, under what the test gave: a verdict-sized ``max_tokens``."""
    return {"max_tokens": protocol.VERDICT_MAX_TOKENS, **params}


def without_max_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as plugins before :data:`protocol.VERDICT_MAX_TOKENS` sent it (the cache adopts those replies)."""
    return {k: v for k, v in body.items() if k != "max_tokens"}
