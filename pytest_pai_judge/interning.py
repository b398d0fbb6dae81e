"""One object for equal small values repeated across thousands of held tests and their rows.

A 20,000-test batch run would otherwise keep 20,000 copies of ``"Accuracy"``, ``5.0``,
``("judge_cached", False)`` or a reply's ``("stop",)``.
"""

from __future__ import annotations

from typing import Any

_SHARED: dict[Any, Any] = {}
_SHARED_MAX = 4096


def shared(value: Any) -> Any:
    """``value``, or an equal value of the same types already seen (criteria names, scores, user properties).

    Equal means of the same types too (``1``, ``1.0`` and ``True`` stay apart; ``0.0`` and NaN are never
    shared: ``-0.0 == 0.0``). At most :data:`_SHARED_MAX` distinct values are kept (then a value is its own).
    """
    if value is None:
        return None
    parts = value if type(value) is tuple else (value,)
    if not all(type(p) in _SHAREABLE and (type(p) is not float or (p and p == p)) for p in parts):
        return value
    key = (type(value), tuple(type(p) for p in parts), value)
    found = _SHARED.get(key)
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_MAX:
        _SHARED[key] = value
    return value


_SHAREABLE = frozenset({str, int, float, bool, type(None)})
