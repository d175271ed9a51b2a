"""The exit statuses of ``python3 main.py``: one meaning each, wherever they are returned.

The README's table and docs/failures.md list them with what to do about each.
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_MISMATCH", "EXIT_USAGE", "EXIT_SPILLED", "EXIT_DEAD_LETTERS",
           "EXIT_NOT_CHECKED", "EXIT_INTERRUPTED"]

EXIT_OK = 0  # reconciliation OK; --load-spill done (or done before)
EXIT_MISMATCH = 1  # MISMATCH (an event unaccounted for), LOSS (Redis forgot), FAILED (poster died)
EXIT_USAGE = 2  # nothing done: a bad flag or setting, a file, database or Redis it cannot use
EXIT_SPILLED = 3  # the final backup failed; the pending events are in a spill file
EXIT_DEAD_LETTERS = 4  # --load-spill loaded the file, but some lines became dead letters
EXIT_NOT_CHECKED = 5  # the reconciliation could not be read or made consistent: no verdict
EXIT_INTERRUPTED = 130  # the shell's code for "ended by SIGINT"
