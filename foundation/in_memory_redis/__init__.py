"""An in-memory Redis server with redis-py's API: ``InMemoryRedis``.

``InMemoryRedis`` stands in for ``redis.Redis(decode_responses=True)``: every method is one Redis
command with redis-py's name, argument order, return values and errors, so a real client could
replace it and the reactions' code (redis_adapter.py) cannot tell them apart. Values are stored
the way Redis stores them (strings and lists of strings; bytes that are not UTF-8 stay bytes); one
lock serialises every command, as Redis's single thread does, and ``pipeline(transaction=True)``
runs its queued commands under that lock, as MULTI/EXEC does.

The modules, in import order: each imports only modules listed before it (pipeline.py names
InMemoryRedis for type checkers only), and none imports anything outside the standard library.

- ``errors``: the exception classes (redis.exceptions' names) and Redis's error texts;
- ``command_table``: each command's arity and flags, as Redis's command table gives them;
- ``protocol``: arguments as redis-py sends them, replies as redis-py returns them;
- ``patterns``: Redis's glob patterns (KEYS, SCAN MATCH), matched without backtracking;
- ``memory``: the estimate of used memory that ``maxmemory`` is checked against;
- ``quicklist``: ``QuickList``, how a list value is stored (nodes the garbage collector skips);
- ``keyspace``, ``scan``, ``strings``, ``lists``, ``keys``, ``transactions``: the server's
  state and its command handlers, as mixin classes of InMemoryRedis;
- ``client``: ``Commands``, redis-py's command methods, shared by the server and the pipeline;
- ``pipeline``: ``Pipeline``, queued commands and MULTI/EXEC with WATCH;
- ``server``: ``InMemoryRedis``, its lock, the check Redis makes before running a command, and
  the dispatch to the handlers.

docs/in-memory-redis.md tells the whole design, and each difference from redis-server.
"""

from .errors import (DataError, ExecAbortError, OutOfMemoryError, RedisError, ResponseError,
                     WatchError)
from .memory import ITEM_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES
from .patterns import glob_matcher
from .pipeline import Pipeline
from .protocol import EMPTY_RESPONSE, NEVER_DECODE
from .server import InMemoryRedis

__all__ = ["RedisError", "ResponseError", "OutOfMemoryError", "ExecAbortError", "DataError",
           "WatchError", "InMemoryRedis", "Pipeline", "NEVER_DECODE", "EMPTY_RESPONSE",
           "KEY_OVERHEAD_BYTES", "ITEM_OVERHEAD_BYTES", "glob_matcher"]

# Private, outside __all__: tools/resp_server.py, which serves this server over a socket, reads
# the arguments and writes the replies with them.
from .protocol import _encode, _Status, _word  # noqa: E402
from .transactions import _Watch  # noqa: E402
