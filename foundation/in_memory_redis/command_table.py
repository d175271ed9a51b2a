"""Redis's command table for the commands offered: each one's arity and the flags used here.

Redis checks a command against its table (server.c's command table, which COMMAND INFO shows)
before it runs it: the number of arguments, whether MULTI may queue it, whether it may run while
used memory is over maxmemory. The client side reads the same table for the names it can send
as they are (any other name may hold spaces to split, or be in another case).
"""

from __future__ import annotations

# Redis's arity: argc counting the name, negative for "at least" (mget([]) still answers
# [], through redis-py's EMPTY_RESPONSE).
ARITY = {"PING": -1, "GET": 2, "SET": -3, "MGET": -2, "INCRBY": 3, "INCR": 2, "DECR": 2,
         "DECRBY": 3, "RPUSH": -3, "LRANGE": 4, "LREM": 4, "LLEN": 2, "DEL": -2, "UNLINK": -2,
         "EXISTS": -2, "EXPIRE": -3, "PERSIST": 2, "TTL": 2, "PTTL": 2, "RENAME": 3,
         "RENAMENX": 3, "TYPE": 2, "KEYS": 2, "SCAN": -2, "DBSIZE": 1, "FLUSHDB": -1,
         "WATCH": -2, "UNWATCH": 1, "EXEC": 1, "DISCARD": 1}

# Not run as queued commands inside a transaction: WATCH and UNWATCH are refused there, as
# Redis refuses them, and so is a raw EXEC (not offered inside a pipeline); a DISCARD ends the
# transaction, as Redis's DISCARD does (Transactions._discard_queued). MULTI_ARITY leaves them
# out, so a transaction holding one takes the slow path.
NOT_QUEUED = ("WATCH", "UNWATCH", "EXEC", "DISCARD")

# What MULTI queues without a second look.
MULTI_ARITY = {name: arity for name, arity in ARITY.items() if name not in NOT_QUEUED}

# Commands Redis flags "denyoom" (COMMAND INFO): refused while used memory is over maxmemory.
DENYOOM = frozenset({"SET", "INCRBY", "INCR", "DECR", "DECRBY", "RPUSH"})

# The offered commands' usual upper-case names (a name in them needs no splitting), and those
# that carry no glob pattern (the GET and POST paths skip looking for one with a set lookup).
COMMAND_NAMES = frozenset(ARITY)
NO_PATTERN = COMMAND_NAMES - {"KEYS", "SCAN"}
