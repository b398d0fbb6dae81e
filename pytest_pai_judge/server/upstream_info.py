"""What the upstream model server can tell about itself: its context length and its own token counts.

Why: the server's own token estimate (:mod:`.tokens`) was 45% too high for one model and too low for
another, and the served 32,768-token context is PAI's, not the upstream model's. None of this is in
the OpenAI API, so each model server is asked in its own words, and whatever it does not offer is
said plainly (context) or falls back to the estimate (token counts):

==============================  =====================================  ==================================
model server                    context length                         token count
==============================  =====================================  ==================================
vLLM                            ``GET /v1/models`` ``max_model_len``   ``POST /tokenize`` (messages, so
                                                                       with the chat template)
llama.cpp ``llama-server``      ``GET /props`` ``n_ctx``               ``POST /apply-template`` then
                                                                       ``POST /tokenize``
Ollama                          ``POST /api/show`` ``num_ctx``, else   none (the estimate)
                                the model's ``*.context_length``
llama-cpp-python's server       none (pass ``--context-limit N``)      ``POST /extras/tokenize/count``
                                                                       (message texts, no chat template)
==============================  =====================================  ==================================

Paths are taken relative to the upstream base URL with its ``/v1`` removed (the servers mount them
at their root). The upstream key (from the environment, never logged) is sent as on chat calls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

log = logging.getLogger("pytest_pai_judge.server.upstream")

PROBE_TIMEOUT_S = 10.0


class UpstreamInfoError(RuntimeError):
    """The upstream could not tell what was asked (``--context-limit auto`` then cannot start the server)."""


def server_root(base_url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port`` (where vLLM, llama.cpp and Ollama mount their own routes)."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _headers(api_key_env: str) -> dict[str, str]:
    key = os.environ.get(api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


async def _json(client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """The JSON answer of one request; None for an error status, a non-JSON answer or a refused connection."""
    try:
        response = await client.request(method, url, json=body)
    except httpx.TransportError as exc:
        log.debug("upstream probe %s %s: %s", method, url, type(exc).__name__)
        return None
    return json_answer(response)


def json_answer(response: httpx.Response) -> Any:
    """A response's JSON body; None for an error status or a body that is not JSON."""
    if response.status_code >= 400:
        return None
    try:
        return response.json()
    except ValueError:
        return None


async def _vllm_context(client: httpx.AsyncClient, root: str, model: str) -> int | None:
    listing = await _json(client, "GET", f"{root}/v1/models")
    cards = listing.get("data") if isinstance(listing, dict) else None
    for card in cards if isinstance(cards, list) else []:
        if isinstance(card, dict) and card.get("id") == model:
            return _positive_int(card.get("max_model_len"))
    return None


async def _llama_cpp_context(client: httpx.AsyncClient, root: str, model: str) -> int | None:
    props = await _json(client, "GET", f"{root}/props")
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    found = _positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return found or _positive_int(props.get("n_ctx"))


async def _ollama_context(client: httpx.AsyncClient, root: str, model: str) -> int | None:
    """Ollama's ``num_ctx`` when the model sets one (the window it runs with), else the model's trained length
    (Ollama may serve less: its default window is ``OLLAMA_CONTEXT_LENGTH``, which no API reports)."""
    shown = await _json(client, "POST", f"{root}/api/show", {"model": model})
    if not isinstance(shown, dict):
        return None
    for line in str(shown.get("parameters") or "").splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx" and value.strip().isdigit():
            return int(value.strip())
    info = shown.get("model_info")
    if isinstance(info, dict):
        lengths = [v for k, v in info.items() if str(k).endswith(".context_length") and _positive_int(v)]
        if lengths:
            log.warning("Ollama model %s sets no num_ctx: serving its trained context (%d tokens); Ollama itself "
                        "may use a smaller window (OLLAMA_CONTEXT_LENGTH)", model, lengths[0])
            return int(lengths[0])
    return None


CONTEXT_PROBES: tuple[tuple[str, Callable[[httpx.AsyncClient, str, str], Awaitable[int | None]]], ...] = (
    ("vLLM GET /v1/models max_model_len", _vllm_context),
    ("llama.cpp GET /props n_ctx", _llama_cpp_context),
    ("Ollama POST /api/show", _ollama_context),
)


async def context_length(base_url: str, model: str, *, api_key_env: str = "UPSTREAM_API_KEY") -> int:
    """The upstream model's context length in tokens, asked the ways of :data:`CONTEXT_PROBES`; raises
    :class:`UpstreamInfoError` saying what was tried when none of them answers."""
    root = server_root(base_url)
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, headers=_headers(api_key_env)) as client:
        for what, probe in CONTEXT_PROBES:
            found = await probe(client, root, model)
            if found:
                log.info("upstream context length of %s: %d tokens (%s)", model, found, what)
                return found
    tried = "; ".join(what for what, _ in CONTEXT_PROBES)
    raise UpstreamInfoError(f"--context-limit auto: the upstream at {base_url} does not tell the context length of "
                            f"model {model!r} (tried {tried}); pass --context-limit TOKENS instead")


class TokenCounter:
    """Counts a prompt's tokens with the upstream's own tokenizer; None where it offers none (the estimate).

    Which way the upstream counts is found on the first call and kept; a connection failure is not kept
    (the upstream may come up later), a server without any of the routes is remembered as such.
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "UPSTREAM_API_KEY") -> None:
        self.root = server_root(base_url)
        self.model = model
        self._client = httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, headers=_headers(api_key_env))
        self._way: str | None = None
        """``vllm``, ``llama.cpp``, ``llama-cpp-python`` or ``none`` once known."""

    async def aclose(self) -> None:
        await self._client.aclose()

    async def count(self, messages: list[dict[str, str]]) -> int | None:
        ways = [self._way] if self._way else ["vllm", "llama.cpp", "llama-cpp-python"]
        if ways == ["none"]:
            return None
        reachable = False
        for way in ways:
            try:
                counted = await self._count(way, messages)
            except httpx.TransportError:  # e.g. the connection the last (failed) answer closed: once more, anew
                try:
                    counted = await self._count(way, messages)
                except httpx.TransportError:
                    continue
            reachable = True
            if counted is not None:
                if self._way is None:
                    log.info("upstream token counts: %s", way)
                self._way = way
                return counted
        if reachable and self._way is None:
            log.info("the upstream offers no token count: the server's estimate is used")
            self._way = "none"
        return None

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return json_answer(await self._client.post(f"{self.root}{path}", json=body))

    async def _count(self, way: str, messages: list[dict[str, str]]) -> int | None:
        if way == "vllm":
            answer = await self._post("/tokenize", {"model": self.model, "messages": messages})
            return _positive_int(answer.get("count")) if isinstance(answer, dict) else None
        if way == "llama.cpp":
            rendered = await self._post("/apply-template", {"messages": messages})
            prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
            if not isinstance(prompt, str):
                return None
            answer = await self._post("/tokenize", {"content": prompt})
            tokens = answer.get("tokens") if isinstance(answer, dict) else None
            return len(tokens) if isinstance(tokens, list) and tokens else None
        text = "\n".join(m["content"] for m in messages)
        answer = await self._post("/extras/tokenize/count", {"input": text})
        return _positive_int(answer.get("count")) if isinstance(answer, dict) else None
