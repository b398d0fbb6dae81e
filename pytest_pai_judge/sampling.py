"""Several samples of one judge request: each sample's cache key, its seed, and the call that draws it.

Sample 0 is the request exactly as the test wrote it (so one sample is today's single verdict,
and a cache recorded with one sample is reused when samples are raised). Sample ``j`` has its own
cache key, derived from the request's key and ``j``, so each sample is paid for once and a warm
rerun makes no calls. The samples a round still needs are drawn in ONE call: the request with
``n`` = how many and ``seed`` derived from the request body and the first sample's number (the
prompt is paid once; the same samples whichever service is asked); choice ``c`` of that call is
the round's ``c``-th missing sample.
"""

from __future__ import annotations

import copy
import hashlib
import json

from .request import JudgeRequest

SEED_BITS = 63
"""Seeds stay below 2**63: the spec's seed is an unsigned 64-bit integer, and some servers sign it."""


def sample_key(base_key: str, index: int) -> str:
    """The cache key of sample ``index`` of the request whose key is ``base_key`` (sample 0: the request's own)."""
    if index == 0:
        return base_key
    return hashlib.sha256(f"{base_key}/sample/{index}".encode()).hexdigest()


def sample_seed(request: JudgeRequest, index: int) -> int:
    """A reproducible seed per (request body, sample number): the same sample every run, different samples apart."""
    body = json.dumps(request.body(), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{body}/seed/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def draw_request(request: JudgeRequest, base_key: str, indices: list[int]) -> JudgeRequest:
    """The one call that draws the samples ``indices``: sample 0 alone is the request as written."""
    if indices == [0]:
        return request
    call = copy.deepcopy(request)
    call.params["seed"] = sample_seed(request, indices[0])
    if len(indices) > 1:
        call.params["n"] = len(indices)
    else:
        call.params.pop("n", None)
    return call
