"""The server's token estimate: ``usage`` counts, the context check and ``max_tokens`` cuts."""

from __future__ import annotations

import re

# A run of ASCII word characters splits into chunks of at most 4 (ceil(len / 4) tokens); every other
# visible character (CJK, punctuation) is one token. One regex pass: the server counts every prompt.
_TOKEN = re.compile(r"[A-Za-z0-9_]{1,4}|[^\sA-Za-z0-9_]")


def count_tokens(text: str) -> int:
    """A deterministic token estimate: one per CJK character or punctuation mark, ~one per 4 letters of a word."""
    return len(_TOKEN.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` with at most ``max_tokens`` tokens (by :func:`count_tokens`)."""
    if count_tokens(text) <= max_tokens:
        return text
    low, high = 0, len(text)  # count_tokens grows monotonically with the prefix length
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(text[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low]
