"""Several samples of one judge request: each sample's cache key, its seed, and the calls that draw them.

A sample is pinned by its number alone, never by how a run happened to draw it. Sample 0 is the
request exactly as written: the single verdict (``samples=1``) of this and every earlier version,
so raising ``samples`` from 1 reuses it. The others come in fixed blocks of :data:`BLOCK` (1-2,
3-4, ...); the samples of a block are the choices of ONE call, the request with ``n`` = how many
of the block are drawn (the prompt is paid once) and ``seed`` = :func:`block_seed` (derived from
the request body and the block, so the same samples whichever service is asked). Every sample has
its own cache key (:func:`sample_key`): each is paid for once, a warm rerun makes no call, and
raising ``samples`` reuses the samples already drawn.
"""

from __future__ import annotations

import copy
import hashlib
import json

from .request import JudgeRequest, without_max_tokens

BLOCK = 2
"""Samples per call after sample 0 (a score assertion's first round is sample 0 and block 1)."""
SEED_BITS = 63
"""Seeds stay below 2**63: the spec's seed is an unsigned 64-bit integer, and some servers sign it."""


def sample_key(base_key: str, index: int) -> str:
    """The cache key of sample ``index`` of the request whose key is ``base_key`` (sample 0: the request's own)."""
    if index == 0:
        return base_key
    return hashlib.sha256(f"{base_key}/sample/{index}".encode()).hexdigest()


def block_of(index: int) -> int:
    """Sample 0 is block 0 on its own; then blocks of :data:`BLOCK`."""
    return 0 if index == 0 else (index - 1) // BLOCK + 1


def block_start(block: int) -> int:
    return 0 if block == 0 else (block - 1) * BLOCK + 1


def round_end(count: int) -> int:
    """The smallest number of samples from 0 that is at least ``count`` and ends a block."""
    if count <= 1:
        return 1
    return block_start(block_of(count - 1) + 1)


def block_seed(request: JudgeRequest, block: int) -> int:
    """A reproducible seed per (request body, block): the same samples every run, whichever service is asked.

    ``max_tokens`` is left out: it only cuts a reply, so a sample that fits is the same sample under any limit.
    """
    body = json.dumps(without_max_tokens(request.body()), sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    digest = hashlib.sha256(f"{body}/seed/{block}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def blocks(indices: list[int]) -> list[list[int]]:
    """The calls that draw ``indices``: per block, its samples from the block's first to the last needed."""
    needed: dict[int, int] = {}
    for index in indices:
        block = block_of(index)
        needed[block] = max(needed.get(block, index), index)
    return [list(range(block_start(block), last + 1)) for block, last in sorted(needed.items())]


def draw_request(request: JudgeRequest, drawn: list[int]) -> JudgeRequest:
    """The call that draws the samples ``drawn`` (one block's, from its first): choice ``c`` is ``drawn[c]``."""
    if drawn == [0]:
        return request
    call = copy.deepcopy(request)
    call.params["seed"] = block_seed(request, block_of(drawn[0]))
    if len(drawn) > 1:
        call.params["n"] = len(drawn)
    else:
        call.params.pop("n", None)
    return call
