"""Benchmarks of the Live Reactions pipeline: ``python3 -m benchmarks`` (``--help`` for flags).

Each item of the benchmark issue lives in its own module and returns its figures as a JSON-ready
dict plus the rows it adds to the printed table:

- ``post_path``  -- 1. POSTMethod loop vs a dict+list floor; 2. live.poster.Poster at rate 0.
- ``read_path``  -- 3. GETMethod vs the seed's SQL aggregate, vs a bare dict lookup, and how its
  cost scales with events and matches.
- ``write_path`` -- 4. POST through Redis vs one INSERT+commit per event (:memory: and file).
- ``backup``     -- 5. BackupDataManager vs a bare executemany; GET tick lateness during a backup.
- ``memory``     -- 6. bytes per pending event; RSS of ``python3 main.py`` runs.
- ``batched_ingest`` -- 7. --ingest-batch 1000 vs 1 on the in-memory server and a local
  redis-server; vs the dict+list floor and raw redis-py pipelining.
- ``lock_hold``  -- 8. the longest time one command holds the in-memory server's lock.
- ``reconcile_cost`` -- 9. one system-wide reconciliation with a big backlog pending: time,
  client memory, the longest Redis stall (redis-server and in-memory).
- ``profiling``  -- cProfile of the hot paths: ``python3 -m benchmarks.profiling``.

Only the standard library is used; timings use ``time.perf_counter``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project directory (holds main.py, config.py, ...)."""

if str(ROOT) not in sys.path:  # the app's modules import as top-level ones, whatever the cwd
    sys.path.insert(0, str(ROOT))
