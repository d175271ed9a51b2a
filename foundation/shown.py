"""How a value from outside is shown in an error line or a reason: cut to SHOWN_MAX_CHARS.

One rule for every message that quotes what it was given (a request field, a setting, a stored
record's field): an id may have hundreds of digits and a field name a million characters, and a
line must stay readable at a glance.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SHOWN_MAX_CHARS", "cut", "describe_value"]

SHOWN_MAX_CHARS = 60
"""The most characters of a value an error line shows; longer text ends in "..."."""


def cut(text: str) -> str:
    """``text`` cut to SHOWN_MAX_CHARS characters, the last three of a cut text being "..."."""
    return text if len(text) <= SHOWN_MAX_CHARS else text[:SHOWN_MAX_CHARS - 3] + "..."


def describe_value(value: Any) -> str:
    """A short repr for an error message (cut), naming the type where the repr alone would
    mislead: ``5`` and ``'5'`` as they are, ``[5] (a list)``."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int too long to print, or a broken __repr__
        return f"<{type(value).__name__}>"
    text = cut(text)
    if type(value) in (int, str, float, bool, type(None), bytes):
        return text
    return f"{text} (a {type(value).__name__})"
