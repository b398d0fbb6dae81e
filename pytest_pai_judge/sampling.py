"""Several samples of one judge request: each sample's cache key, its seed, and the calls that draw them.

A sample is pinned by its number alone, never by how a run happened to draw it: samples are
grouped in fixed blocks of :data:`BLOCK` (0-2, 3-5, ...), and the samples of block ``b`` are the
choices of ONE call, the request with ``seed`` = :func:`block_seed` (derived from the request body
and ``b``) and ``n`` = how many of the block are drawn (the prompt is paid once). Sample ``j`` has
its own cache key (:func:`sample_key`), so each is paid for once, a warm rerun makes no call, and
raising ``samples`` reuses the samples already drawn. ``samples=1`` is not part of this family:
it is the request exactly as written, the single verdict of every earlier version.
"""

from __future__ import annotations

import copy
import hashlib
import json

from .request import JudgeRequest

BLOCK = 3
"""Samples per call: the first round of a score assertion is one block."""
SEED_BITS = 63
"""Seeds stay below 2**63: the spec's seed is an unsigned 64-bit integer, and some servers sign it."""


def sample_key(base_key: str, index: int) -> str:
    """The cache key of sample ``index`` of the request whose key is ``base_key``."""
    return hashlib.sha256(f"{base_key}/sample/{index}".encode()).hexdigest()


def block_seed(request: JudgeRequest, block: int) -> int:
    """A reproducible seed per (request body, block): the same samples every run, whichever service is asked."""
    body = json.dumps(request.body(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{body}/seed/{block}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def blocks(indices: list[int]) -> list[list[int]]:
    """The calls that draw ``indices``: per block, its samples from the block's first to the last needed."""
    needed: dict[int, int] = {}
    for index in indices:
        block = index // BLOCK
        needed[block] = max(needed.get(block, index), index)
    return [list(range(block * BLOCK, last + 1)) for block, last in sorted(needed.items())]


def draw_request(request: JudgeRequest, drawn: list[int]) -> JudgeRequest:
    """The call that draws the samples ``drawn`` (one block's, from its first): choice ``c`` is ``drawn[c]``."""
    call = copy.deepcopy(request)
    call.params["seed"] = block_seed(request, drawn[0] // BLOCK)
    if len(drawn) > 1:
        call.params["n"] = len(drawn)
    else:
        call.params.pop("n", None)
    return call
