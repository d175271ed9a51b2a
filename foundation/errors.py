"""The exceptions a Redis key held by another application raises, shared by the adapter and the
ingest buffer (redis_adapter.py raises it, foundation/ingest.py counts its dropped events)."""

from __future__ import annotations

from foundation.in_memory_redis import RedisError

__all__ = ["WrongTypeError", "ForeignValueError"]


class WrongTypeError(RedisError):
    """A counter or list key of this layout holds another application's value (WRONGTYPE, or a
    string that is not an integer), so some events could not be stored; what ran of them was
    undone. ``keys`` are the keys at fault, ``error`` the first Redis error, ``dropped`` the
    events not stored, ``uncounted`` those stored without their count (their list was staged
    by a backup before the undo could remove them; the reconciliation shows them).
    """

    def __init__(self, keys: list[str], error: BaseException, dropped: int,
                 uncounted: int = 0) -> None:
        self.keys, self.error, self.dropped, self.uncounted = keys, error, dropped, uncounted
        extra = f", {uncounted} stored uncounted" if uncounted else ""
        super().__init__(
            f"{', '.join(keys)[:200]} hold(s) another application's value ({error}); "
            f"{dropped} event(s) not stored{extra}: delete or rename that key, or use another "
            "--key-prefix")


class ForeignValueError(RedisError):
    """One of the product's own keys of fixed name (the dataset id, the backup generation:
    KeyLayout.own_keys) holds another application's value. ``key`` names it, ``found`` says
    what it holds. Nothing was changed."""

    def __init__(self, key: str, found: str) -> None:
        self.key, self.found = key, found
        super().__init__(f"Redis key {key} holds another application's value ({found}), not this "
                         "product's: delete or rename it there, or choose another --key-prefix")
