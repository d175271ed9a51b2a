"""``Pipeline``: commands queued on the client and sent together, as redis-py's Pipeline.

A pipeline queues its commands and sends them at ``execute()``, to the server's
``_execute_pipeline``: with ``transaction=True`` as MULTI/EXEC, run whole under the server lock;
otherwise one by one. After ``watch()`` it runs each command at once (redis-py's immediate mode)
until ``multi()``. The POST path makes one pipeline per event, so the usual case (a transaction
of commands whose replies need no decoding) takes the shortest path through ``execute()``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from . import protocol
from .client import Commands
from .errors import RedisError, ResponseError, WatchError, _annotate
from .protocol import _PLAIN_REPLIES, EMPTY_RESPONSE, _client_reply, _pack, _word
from .transactions import _Watch

if TYPE_CHECKING:  # for the annotations only: server.py imports this module
    from .server import InMemoryRedis


class Pipeline(Commands):
    """Commands queued on the client and sent together by ``execute()`` (redis-py's Pipeline).

    Each command method returns the pipeline, so calls chain. With ``transaction=True`` (the
    default) execute() is MULTI/EXEC: no other client's command runs between the queued ones.
    As in Redis, a command failing at run time (e.g. WRONGTYPE) does not undo the others.

    Optimistic locking, as redis-py: ``watch(*keys)`` WATCHes them and switches the pipeline to
    immediate mode (each command runs and answers at once, to read the current values);
    ``multi()`` starts queuing again; ``execute()`` then raises WatchError, running nothing, if a
    watched key changed since WATCH. ``reset()`` (also on leaving ``with``) unwatches.
    """

    # Defaults as class attributes: a pipeline is made for every POST, so __init__ stays short.
    watching = False
    explicit_transaction = False
    _watch: _Watch | None = None  # made by the first WATCH
    _plain = True  # every queued reply is returned as read (see _PLAIN_REPLIES)

    def __init__(self, server: InMemoryRedis, transaction: bool = True) -> None:
        self._server = server
        self.transaction = transaction
        self.command_stack: list[tuple[tuple, dict]] = []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.reset()

    def __len__(self) -> int:
        return len(self.command_stack)

    def __bool__(self) -> bool:
        return True  # as redis-py: an empty pipeline is still a pipeline, not a falsy length

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self._immediate(args, options)
        self.command_stack.append((args, options))  # encoded by execute(), as redis-py does
        if options or args[0] not in _PLAIN_REPLIES:
            self._plain = False
        return self

    def _immediate(self, args: tuple, options: dict) -> Any:
        """Run one command now, with this pipeline's WATCH state (redis-py's immediate mode)."""
        command = _pack(args)
        if self._watch is None:
            self._watch = _Watch()
            # redis-py's Pipeline.__del__ resets, so a pipeline dropped while watching leaves
            # no watch behind; a finalizer made only here costs the POST path nothing.
            weakref.finalize(self, self._server._abandoned.append, self._watch).atexit = False
        reply = self._server._run_locked(command, self._watch)
        name = _word(command[0])
        if name == "UNWATCH" and not isinstance(reply, ResponseError):
            self.watching = False
        elif name == "WATCH" and not isinstance(reply, ResponseError):
            self.watching = True
        if isinstance(reply, ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        return _client_reply(args[0], reply, options)

    def watch(self, *names: Any) -> Any:
        """WATCH ``names`` for this pipeline's next transaction; True. RedisError after multi()."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue a WATCH after a MULTI")
        return self.execute_command("WATCH", *names)

    def unwatch(self) -> bool:
        """Forget the watched keys; True."""
        return self.watching and self.execute_command("UNWATCH") or True

    def multi(self) -> None:
        """Start queuing the transaction after watch() (redis-py's explicit MULTI)."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue nested calls to MULTI")
        if self.command_stack:
            raise RedisError("Commands without an initial WATCH have already been issued")
        self.explicit_transaction = True

    def discard(self) -> None:
        """Send DISCARD as redis-py's discard() sends it: queued, or at once after watch().

        It empties nothing here (reset() does). Queued in a transaction, it ends it on the
        server: execute() then runs none of the commands queued before it, runs those queued
        after it one by one, and raises ResponseError "EXEC without MULTI". In a pipeline
        without a transaction, execute() answers it Redis's error "DISCARD without MULTI"
        (raised, or in the replies with raise_on_error=False). In immediate mode (after watch(),
        before multi()) that error is raised at once, and the keys stay watched.
        """
        self.execute_command("DISCARD")

    def reset(self) -> None:
        """Forget the queued commands, leave MULTI and unwatch every key."""
        self.command_stack = []
        self._plain = True
        if self.watching:
            self._server._run_locked(["UNWATCH"], self._watch)
        self.watching = False
        self.explicit_transaction = False

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands; a list with each one's reply, in order.

        With ``raise_on_error`` the first error reply is raised (as ResponseError naming the
        command's place) after every command has run; otherwise it stands in the list.
        Raises WatchError, having run nothing, if a watched key changed since watch().
        """
        stack = self.command_stack
        if self.watching or self.explicit_transaction:
            try:
                return self._execute(stack, raise_on_error)
            finally:
                self.reset()
        if not stack:
            return []
        self.command_stack = []  # the usual case, with nothing else to reset
        return self._execute(stack, raise_on_error)

    def _execute(self, stack: list[tuple[tuple, dict]], raise_on_error: bool) -> list[Any]:
        commands = []
        for args, _ in stack:  # a loop, as in _pack; DataError here: nothing is sent
            commands.append(_pack(args))
        transaction = self.transaction or self.explicit_transaction
        sent = commands
        if not self._plain:  # redis-py does not send a command with an EMPTY_RESPONSE
            sent = [command for command, (_, options) in zip(commands, stack)
                    if EMPTY_RESPONSE not in options]
        if self.watching:
            replies = self._server._execute_pipeline(sent, transaction, self._watch)
            self.watching = not transaction  # EXEC unwatches
        else:
            replies = self._server._execute_pipeline(sent, transaction, None, self._plain)
        if replies is None:
            raise WatchError("Watched variable changed.")
        if sent is not commands and len(sent) < len(commands):
            answered = iter(replies)
            replies = [options[EMPTY_RESPONSE] if EMPTY_RESPONSE in options else next(answered)
                       for _, options in stack]
        plain, self._plain = self._plain and not protocol._bytes_sent, True
        if plain:  # the POST path: only error replies to look for
            if raise_on_error:
                for number, (reply, command) in enumerate(zip(replies, commands), 1):
                    if isinstance(reply, ResponseError):
                        raise _annotate(reply, number, command)
            return replies
        results = []
        for number, (reply, command, (args, options)) in enumerate(
                zip(replies, commands, stack), 1):
            if isinstance(reply, ResponseError):
                if raise_on_error:
                    raise _annotate(reply, number, command)
                results.append(reply)
            else:
                results.append(_client_reply(args[0], reply, options, transaction))
        return results
