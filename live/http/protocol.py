"""Sans-IO HTTP/1.1: request parsing and response framing, with no sockets and no clock.

``RequestParser`` is fed the bytes a client sent and hands back events, one at a time: a
``Request`` (the head), body bytes (decoded from Content-Length or chunked framing),
``END_OF_MESSAGE``, or ``NEED_DATA``. A request that this server refuses raises
``ProtocolError``, which carries the status to answer (h11's ``error_status_hint``): 400, 408 is
the server's, 413, 414, 417, 431, 501 or 505. After any ``ProtocolError`` the connection must be
closed: the parser does not know where the next request would start.

Responses are framed in two steps: ``prepare_response_head`` checks an application's status and
headers once (``ResponseError`` for an invalid one), and ``frame_response_head`` decides the body's
framing (Content-Length, chunked, or close-delimited for HTTP/1.0) and returns the head's bytes.

Being free of I/O, everything here is tested with bytes in and bytes out (tests/test_http_server.py);
the server (server.py) only moves bytes between sockets and these functions.
"""

from __future__ import annotations

import http
import re
from typing import Any, Iterable, Optional, Union
from urllib.parse import unquote

__all__ = [
    "MAX_REQUEST_LINE_BYTES", "MAX_HEAD_BYTES", "MAX_HEADERS", "MAX_BODY_BYTES",
    "MAX_CHUNK_LINE_BYTES", "ProtocolError", "ResponseError", "Request", "RequestParser",
    "NEED_DATA", "END_OF_MESSAGE", "ResponseHead", "prepare_response_head",
    "frame_response_head", "frame_chunk", "LAST_CHUNK", "CONTINUE_RESPONSE", "error_response",
    "LENGTH", "CHUNKED", "CLOSE_DELIMITED", "NO_BODY",
]

MAX_REQUEST_LINE_BYTES = 8192
"""Longest request line (method, target, version; CRLF not counted), in bytes: longer is 414."""
MAX_HEAD_BYTES = 16384
"""Longest request head (request line, headers and the blank line), in bytes: longer is 431."""
MAX_HEADERS = 100
"""Most header lines in one request head: more is 431 (CPython's http.client allows 100)."""
MAX_BODY_BYTES = 1_048_576
"""Largest request body, in bytes, by Content-Length or decoded from chunks: larger is 413."""
MAX_CHUNK_LINE_BYTES = 4096
"""Longest chunk-size line (the size and any extensions; CRLF not counted), in bytes: longer is 400."""

_CONTENT_LENGTH_DIGITS_MAX = 18
"""A Content-Length of more digits than this is refused as invalid (400) before it is read."""
_CHUNK_SIZE_DIGITS_MAX = 16
"""A chunk size of more hex digits than this is refused as invalid (400)."""

_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""RFC 9110's tchar: what a method or a header name is made of."""
_FIELD_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
"""What a head may hold besides its CRLFs: HTAB, SP, visible ASCII and obs-text (no CTL, no DEL)."""
_HEX_BYTES = b"0123456789abcdefABCDEF"
_KNOWN_METHODS = {m.encode(): m for m in
                  ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")}
_NAME_CACHE: dict = {}
"""Header names already checked, raw name -> lower-cased name (at most _NAME_CACHE_SIZE)."""
_NAME_CACHE_SIZE = 512

# Headers the parser acts on; every other header only goes to the application.
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _EXPECT = range(5)
_SPECIAL = {b"host": _HOST, b"content-length": _CONTENT_LENGTH,
            b"transfer-encoding": _TRANSFER_ENCODING, b"connection": _CONNECTION,
            b"expect": _EXPECT}


class ProtocolError(Exception):
    """A request this server refuses. ``status`` is the status to answer (400, 413, 414, 417,
    431, 501 or 505; 408 is raised by the server); ``reason`` says what was wrong, in words safe
    to send back (it never quotes the client's bytes). The connection is closed after it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason

    @property
    def error_status_hint(self) -> int:
        """h11's name for ``status``."""
        return self.status


class ResponseError(ValueError):
    """An application's response that cannot be sent as HTTP/1.1 (a header name that is not a
    token, a CR, LF or NUL in a value, an invalid Content-Length or status)."""


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
"""``next_event()``: nothing more can be parsed until more bytes are fed."""
END_OF_MESSAGE = _Sentinel("END_OF_MESSAGE")
"""``next_event()``: the request's body is complete (only for a Request with ``has_body``)."""


class Request:
    """A parsed request head.

    ``method`` (str, as sent: methods are case-sensitive), ``raw_path`` (bytes, the target's path
    as sent), ``path`` (str, percent-decoded as UTF-8), ``query_string`` (bytes, after ``?``, as
    sent), ``http_version`` ("1.0" or "1.1"), ``headers`` (list of (lower-cased name, value) bytes
    pairs, in order, repeats kept), ``keep_alive`` (bool: what the client asked for),
    ``expect_continue`` (bool: HTTP/1.1 ``Expect: 100-continue`` with a body), ``content_length``
    (int, or None when chunked), ``has_body`` (bool: body events and END_OF_MESSAGE follow).
    """

    __slots__ = ("method", "raw_path", "path", "query_string", "http_version", "headers",
                 "keep_alive", "expect_continue", "content_length", "has_body")

    def __init__(self, method: str, raw_path: bytes, path: str, query_string: bytes,
                 http_version: str, headers: list, keep_alive: bool, expect_continue: bool,
                 content_length: Optional[int], has_body: bool) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = path
        self.query_string = query_string
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length
        self.has_body = has_body

    def __repr__(self) -> str:
        return (f"Request({self.method} {self.raw_path!r} HTTP/{self.http_version}, "
                f"{len(self.headers)} headers, content_length={self.content_length})")


Event = Union[Request, bytes, _Sentinel]

# Parser states.
_HEAD, _LENGTH_BODY, _LENGTH_DONE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS = range(7)


_BARE_LF = re.compile(rb"(?<!\r)\n")
"""An LF without its CR."""


class RequestParser:
    """Parses the requests of one connection, one after another (pipelined requests included).

    ``feed(data)`` appends bytes; ``next_event()`` returns the next event. The caller decides when
    to parse the next request's head (after the current response, so responses stay in order).
    The parser keeps what was fed and not yet parsed (``buffered`` bytes); while parsing a head it
    refuses to hold more than the head limit, and a body never exceeds the body limit.
    """

    __slots__ = ("_buf", "_state", "_remaining", "_body_bytes", "_trailer_bytes", "_scan_from",
                 "max_request_line_bytes", "max_head_bytes", "max_headers", "max_body_bytes")

    def __init__(self, max_request_line_bytes: int = MAX_REQUEST_LINE_BYTES,
                 max_head_bytes: int = MAX_HEAD_BYTES, max_headers: int = MAX_HEADERS,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._body_bytes = 0
        self._trailer_bytes = 0
        self._scan_from = 0
        self.max_request_line_bytes = max_request_line_bytes
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_body_bytes = max_body_bytes

    def feed(self, data: bytes | memoryview) -> None:
        """Append bytes received from the client (copied: ``data`` may be reused after)."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet returned in an event, in bytes."""
        return len(self._buf)

    @property
    def in_body(self) -> bool:
        """True between a Request with a body and its END_OF_MESSAGE."""
        return self._state != _HEAD

    def next_event(self) -> Event:
        """The next event: a ``Request``, body ``bytes`` (never empty), ``END_OF_MESSAGE`` or
        ``NEED_DATA``. Raises ``ProtocolError`` for a request this server refuses."""
        state = self._state
        if state == _HEAD:
            return self._parse_head()
        if state == _LENGTH_BODY:
            if not self._buf:
                return NEED_DATA
            data = self._take()
            if self._remaining == 0:
                self._state = _LENGTH_DONE
            return data
        if state == _LENGTH_DONE:
            self._state = _HEAD
            return END_OF_MESSAGE
        return self._next_chunked_event(state)

    def whole_body(self) -> Optional[bytes]:
        """The body of the request just parsed, if it has a Content-Length and all of it has
        been fed: its bytes (the request's END_OF_MESSAGE is passed too); else None, and the
        body comes in events as usual. What most requests take, in one step."""
        if self._state != _LENGTH_BODY or len(self._buf) < self._remaining:
            return None
        data = self._take()
        self._state = _HEAD
        return data

    def _take(self) -> bytes:
        """Up to ``_remaining`` body bytes off the buffer (which is not empty), counted off."""
        buf, n = self._buf, self._remaining
        if len(buf) <= n:  # the whole buffer: no slice copy
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._remaining = n - len(data)
        return data

    # -- the head ------------------------------------------------------------------------------

    def _parse_head(self) -> Event:
        buf = self._buf
        if buf[:2] == b"\r\n":
            # RFC 9112 §2.2: ignore empty lines before a request line (sent after some bodies).
            while buf[:2] == b"\r\n":
                del buf[:2]
            self._scan_from = 0
        end = buf.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            if not buf:
                return NEED_DATA
            if buf.find(b"\r\n", 0, self.max_request_line_bytes + 2) < 0:
                if len(buf) > self.max_request_line_bytes:
                    raise ProtocolError(414, f"the request line is longer than "
                                             f"{self.max_request_line_bytes} bytes")
            if len(buf) > self.max_head_bytes:
                raise ProtocolError(431, f"the request head is longer than "
                                         f"{self.max_head_bytes} bytes")
            if _BARE_LF.search(buf, self._scan_from):
                # A head whose lines end in a bare LF never ends in CRLF CRLF: say so now
                # rather than at the request deadline. (What came before was searched already.)
                raise ProtocolError(400, "a line of the head ends in a bare LF, not CRLF")
            self._scan_from = max(0, len(buf) - 3)
            return NEED_DATA
        self._scan_from = 0
        head = bytes(buf[:end])
        del buf[:end + 4]
        return self._request(head)

    def _request(self, head: bytes) -> Request:
        lines = head.split(b"\r\n")
        line = lines[0]
        if len(line) > self.max_request_line_bytes:
            raise ProtocolError(414, f"the request line is longer than "
                                     f"{self.max_request_line_bytes} bytes")
        if len(head) + 4 > self.max_head_bytes:
            raise ProtocolError(431, f"the request head is longer than {self.max_head_bytes} bytes")
        if len(lines) - 1 > self.max_headers:
            raise ProtocolError(431, f"the request has more than {self.max_headers} headers")
        controls = head.translate(None, _FIELD_BYTES)
        if controls != b"\r\n" * (len(lines) - 1):
            raise ProtocolError(400, "a control character (CR, LF, NUL or another) in the head")
        parts = line.split(b" ")
        if len(parts) != 3:
            raise ProtocolError(400, "the request line is not 'METHOD target HTTP/1.1'")
        method_bytes, target, version = parts
        method = _KNOWN_METHODS.get(method_bytes)
        if method is None:
            if not method_bytes or method_bytes.translate(None, _TOKEN_BYTES):
                raise ProtocolError(400, "the method is not a token")
            method = method_bytes.decode("ascii")
        if version == b"HTTP/1.1":
            http_version = "1.1"
        elif version == b"HTTP/1.0":
            http_version = "1.0"
        else:
            http_version = _other_version(version)
        raw_path, query_string = _split_target(target)
        path = unquote(raw_path.decode("ascii")) if b"%" in raw_path else raw_path.decode("ascii")

        headers = []
        hosts = 0
        lengths = None
        codings = None
        connection = None
        expect = None
        cache = _NAME_CACHE
        for line in lines[1:]:
            colon = line.find(b":")
            name = line[:colon] if colon > 0 else None
            lowered = cache.get(name)
            if lowered is None:
                lowered = _check_name(line, colon)
            value = line[colon + 1:].strip(b" \t")
            headers.append((lowered, value))
            special = _SPECIAL.get(lowered)
            if special is not None:
                if special == _CONTENT_LENGTH:
                    lengths = [value] if lengths is None else lengths + [value]
                elif special == _HOST:
                    hosts += 1
                elif special == _TRANSFER_ENCODING:
                    codings = value if codings is None else codings + b"," + value
                elif special == _CONNECTION:
                    connection = value if connection is None else connection + b"," + value
                else:
                    expect = value if expect is None else expect + b"," + value

        if http_version == "1.1" and hosts != 1:
            raise ProtocolError(400, "an HTTP/1.1 request needs exactly one Host header")
        keep_alive = http_version == "1.1"
        if connection is not None:
            tokens = [t.strip(b" \t") for t in connection.lower().split(b",")]
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        content_length: Optional[int] = 0
        if codings is not None:
            if lengths is not None:
                raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
            if http_version == "1.0":
                raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
            _check_codings(codings)
            content_length = None
        elif lengths is not None:
            content_length = _content_length(lengths)
            if content_length > self.max_body_bytes:
                raise ProtocolError(413, f"the body is larger than {self.max_body_bytes} bytes")
        has_body = content_length != 0
        expect_continue = False
        if expect is not None and http_version == "1.1":
            if expect.strip(b" \t").lower() != b"100-continue":
                raise ProtocolError(417, "the only expectation supported is 100-continue")
            expect_continue = has_body
        if has_body:
            self._body_bytes = 0
            if content_length is None:
                self._state = _CHUNK_SIZE
            else:
                self._state = _LENGTH_BODY
                self._remaining = content_length
        return Request(method, raw_path, path, query_string, http_version, headers, keep_alive,
                       expect_continue, content_length, has_body)

    # -- chunked bodies ------------------------------------------------------------------------

    def _next_chunked_event(self, state: int) -> Event:
        buf = self._buf
        while True:
            if state == _CHUNK_DATA:
                if not buf:
                    return NEED_DATA
                data = self._take()
                if self._remaining == 0:
                    self._state = _CHUNK_CRLF
                return data
            if state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return NEED_DATA
                if buf[:2] != b"\r\n":
                    raise ProtocolError(400, "chunk data is not followed by CRLF")
                del buf[:2]
                state = self._state = _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE_BYTES + 2)
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE_BYTES:
                        raise ProtocolError(400, f"a chunk-size line is longer than "
                                                 f"{MAX_CHUNK_LINE_BYTES} bytes")
                    return NEED_DATA
                line = bytes(buf[:end])
                del buf[:end + 2]
                size = _chunk_size(line)
                self._body_bytes += size
                if self._body_bytes > self.max_body_bytes:
                    raise ProtocolError(413, f"the body is larger than {self.max_body_bytes} bytes")
                if size:
                    self._remaining = size
                    state = self._state = _CHUNK_DATA
                else:
                    self._trailer_bytes = 0
                    state = self._state = _TRAILERS
            else:  # _TRAILERS
                end = buf.find(b"\r\n")
                if end < 0:
                    if self._trailer_bytes + len(buf) > self.max_head_bytes:
                        raise ProtocolError(431, f"the trailers are longer than "
                                                 f"{self.max_head_bytes} bytes")
                    return NEED_DATA
                line = bytes(buf[:end])
                del buf[:end + 2]
                if not line:
                    self._state = _HEAD
                    return END_OF_MESSAGE
                self._trailer_bytes += end + 2
                if self._trailer_bytes > self.max_head_bytes:
                    raise ProtocolError(431, f"the trailers are longer than "
                                             f"{self.max_head_bytes} bytes")
                if line.find(b":") <= 0 or line.translate(None, _FIELD_BYTES):
                    raise ProtocolError(400, "a malformed trailer line")
                # Trailers are read and dropped: ASGI has no request trailers.


def _other_version(version: bytes) -> str:
    if (len(version) == 8 and version.startswith(b"HTTP/") and version[6:7] == b"."
            and version[5:6].isdigit() and version[7:8].isdigit()):
        if version[5:6] == b"1":
            return "1.1"    # RFC 9110 §2.5: a higher 1.x minor is served as 1.1
        raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    raise ProtocolError(400, "the request line does not end in a valid HTTP version")


def _split_target(target: bytes) -> tuple:
    """(raw path, query string) of a request target in origin form or absolute form."""
    if not target.isascii() or b"\t" in target:
        raise ProtocolError(400, "the request target is not printable ASCII")
    if target[:1] != b"/":
        if target == b"*":
            return b"*", b""
        scheme_end = target.find(b"://")
        if scheme_end <= 0:
            raise ProtocolError(400, "the request target is neither a path nor an absolute URL")
        rest = target[scheme_end + 3:]
        cut = len(rest)
        for mark in (b"/", b"?", b"#"):
            at = rest.find(mark)
            if 0 <= at < cut:
                cut = at
        target = b"/" + rest[cut:] if rest[cut:cut + 1] != b"/" else rest[cut:]
    path, _, query = target.partition(b"?")
    return path, query


def _check_name(line: bytes, colon: int) -> bytes:
    """The lower-cased name of a header line whose name is not in the cache, or ProtocolError."""
    if line[:1] in (b" ", b"\t"):
        raise ProtocolError(400, "a folded header line (obs-fold)")
    if colon < 0:
        raise ProtocolError(400, "a header line without a colon")
    name = line[:colon]
    if not name:
        raise ProtocolError(400, "a header line with an empty name")
    if name[-1:] in (b" ", b"\t"):
        raise ProtocolError(400, "whitespace between a header name and its colon")
    if name.translate(None, _TOKEN_BYTES):
        raise ProtocolError(400, "a header name that is not a token")
    lowered = name.lower()
    if len(_NAME_CACHE) < _NAME_CACHE_SIZE:
        _NAME_CACHE[name] = lowered
    return lowered


def _content_length(values: list) -> int:
    """The one length that all Content-Length values (and their comma-separated parts) name.

    RFC 9110 §8.6 lets a recipient take ``42, 42`` or two equal headers as one; different values,
    an empty value, a sign, inner spaces or more than 18 digits are invalid."""
    if len(values) == 1:
        value = values[0]
        if value.isdigit() and len(value) <= _CONTENT_LENGTH_DIGITS_MAX:
            return int(value)
    found = set()
    for value in values:
        for part in value.split(b","):
            part = part.strip(b" \t")
            if not part.isdigit() or len(part) > _CONTENT_LENGTH_DIGITS_MAX:
                raise ProtocolError(400, f"Content-Length is not 1 to "
                                         f"{_CONTENT_LENGTH_DIGITS_MAX} digits")
            found.add(int(part))
    if len(found) != 1:
        raise ProtocolError(400, "Content-Length is repeated with different values")
    return found.pop()


def _check_codings(codings: bytes) -> None:
    """Accept ``Transfer-Encoding: chunked`` alone (RFC 9112 §6.1, §7)."""
    names = [c.strip(b" \t").lower() for c in codings.split(b",")]
    if names == [b"chunked"]:
        return
    if names[-1] != b"chunked" or names.count(b"chunked") > 1 or not all(names):
        # Chunked must be the last coding, and only once; else the framing is unknown.
        raise ProtocolError(400, "Transfer-Encoding must end in chunked, applied once")
    raise ProtocolError(501, "the only transfer coding supported is chunked")


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].rstrip(b" \t")   # chunk extensions are ignored
    if (not size or len(size) > _CHUNK_SIZE_DIGITS_MAX or size.translate(None, _HEX_BYTES)
            or line.translate(None, _FIELD_BYTES)):
        raise ProtocolError(400, f"an invalid chunk size (1 to {_CHUNK_SIZE_DIGITS_MAX} hex digits)")
    return int(size, 16)


# -- responses ---------------------------------------------------------------------------------

def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}

LENGTH, CHUNKED, CLOSE_DELIMITED, NO_BODY = range(4)
"""How a response's body is framed: by Content-Length, chunked, by closing the connection (HTTP/1.0
clients), or not at all (HEAD, 204, 304)."""

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
_CLOSE_LINE = b"connection: close\r\n"
_KEEP_ALIVE_LINE = b"connection: keep-alive\r\n"
_CHUNKED_LINE = b"transfer-encoding: chunked\r\n"


class ResponseHead:
    """An application's status and headers, checked: ``status`` (int), ``lines`` (bytes: the
    header lines to send, CRLF-ended), ``content_length`` (int or None), ``close`` (the app sent
    ``connection: close``), ``has_date`` and ``has_server`` (the app sent its own)."""

    __slots__ = ("status", "lines", "content_length", "close", "has_date", "has_server")

    def __init__(self, status: int, lines: bytes, content_length: Optional[int], close: bool,
                 has_date: bool, has_server: bool) -> None:
        self.status = status
        self.lines = lines
        self.content_length = content_length
        self.close = close
        self.has_date = has_date
        self.has_server = has_server


_RESPONSE_NAMES: dict = {}
"""Response header names already checked, name -> lower-cased name."""
_DROPPED, _RESPONSE_LENGTH, _RESPONSE_CONNECTION, _RESPONSE_DATE, _RESPONSE_SERVER = range(5)
_RESPONSE_SPECIAL = {b"transfer-encoding": _DROPPED, b"content-length": _RESPONSE_LENGTH,
                     b"connection": _RESPONSE_CONNECTION, b"date": _RESPONSE_DATE,
                     b"server": _RESPONSE_SERVER}


_RESPONSE_HEADS: dict = {}
"""Heads already checked, (status, headers) -> ResponseHead: an app answers with the same few
again and again (a POST's differ only in content-length), and checking one costs more than
finding it. Cleared when it holds _RESPONSE_HEADS_KEPT."""
_RESPONSE_HEADS_KEPT = 1024


def prepare_response_head(status: int, headers: Iterable) -> ResponseHead:
    """Check an application's ``http.response.start`` status and headers (byte pairs).

    ``transfer-encoding`` and ``connection`` headers are dropped: the server frames the body and
    says ``connection: close`` itself (ASGI: servers handle Transfer-Encoding). Raises
    ``ResponseError`` for a status outside 200-599 or a header that cannot be sent. The same
    status and headers give the same head (shared: never changed), checked once."""
    headers = tuple(headers)
    key = (status, headers) if type(status) is int else None
    try:
        head = _RESPONSE_HEADS.get(key)
    except (TypeError, ValueError):   # unhashable parts (a list, a writable memoryview)
        key = head = None
    if head is not None:
        return head
    head = _check_response_head(status, headers)
    if key is not None:
        if len(_RESPONSE_HEADS) >= _RESPONSE_HEADS_KEPT:
            _RESPONSE_HEADS.clear()
        _RESPONSE_HEADS[key] = head
    return head


def _check_response_head(status: int, headers: Iterable) -> ResponseHead:
    if type(status) is not int and (not isinstance(status, int) or isinstance(status, bool)):
        raise ResponseError(f"status {status!r}: a response status is an int from 200 to 599")
    if not 200 <= status <= 599:
        raise ResponseError(f"status {status!r}: a response status is an int from 200 to 599")
    out = []
    content_length = None
    close = has_date = has_server = False
    names = _RESPONSE_NAMES
    for name, value in headers:
        if type(name) is not bytes:
            name = _header_bytes(name, "name")
        if type(value) is not bytes:
            value = _header_bytes(value, "value")
        lowered = names.get(name)
        if lowered is None:
            if not name or name.translate(None, _TOKEN_BYTES):
                raise ResponseError(f"header name {name!r}: a header name is a non-empty token "
                                    f"of bytes")
            lowered = name.lower()
            if len(names) < _NAME_CACHE_SIZE:
                names[name] = lowered
        if value.translate(None, _FIELD_BYTES):
            raise ResponseError(f"header {lowered!r}: a value is bytes without CR, LF, NUL or "
                                f"another control character")
        special = _RESPONSE_SPECIAL.get(lowered)
        if special is not None:
            if special == _RESPONSE_LENGTH:
                value = value.strip(b" \t")
                if not value.isdigit() or len(value) > _CONTENT_LENGTH_DIGITS_MAX:
                    raise ResponseError(f"content-length {value!r}: not a number of bytes")
                if content_length is not None and content_length != int(value):
                    raise ResponseError("content-length sent twice with different values")
                if content_length is not None:
                    continue
                content_length = int(value)
            elif special == _RESPONSE_CONNECTION:
                if b"close" in value.lower():
                    close = True
                continue
            elif special == _DROPPED:
                continue
            elif special == _RESPONSE_DATE:
                has_date = True
            else:
                has_server = True
        out.append(lowered)
        out.append(b": ")
        out.append(value)
        out.append(b"\r\n")
    return ResponseHead(status, b"".join(out), content_length, close, has_date, has_server)


def _header_bytes(part: Any, what: str) -> bytes:
    """A header's name or value given as another bytes-like object (bytearray, memoryview), as
    bytes: it is checked as bytes would be, so that a head kept for an equal bytes one answers
    the same as a check would. ResponseError for anything else (a str)."""
    if isinstance(part, (bytearray, memoryview)):
        return bytes(part)
    raise ResponseError(f"header {what} {part!r}: header names and values are bytes")


def frame_response_head(head: ResponseHead, *, http_version: str, is_head: bool,
                        keep_alive: bool, body_length: Optional[int], date: bytes,
                        server: bytes) -> tuple:
    """The bytes of a response head, and how its body goes: (bytes, framing, length, keep_alive).

    ``body_length`` is the whole body's length in bytes when the server already has all of it
    (the app's first body message ended the response), else None (a stream). The framing is
    NO_BODY for HEAD, 204 and 304; LENGTH when the app sent a Content-Length or the whole body is
    known (a known body gets ``content-length`` added, ``0`` for none); else CHUNKED for HTTP/1.1
    and CLOSE_DELIMITED for HTTP/1.0, which also ends keep-alive. ``date`` and ``server`` are the
    header lines (CRLF-ended bytes) added when the app sent no such header (empty: none added).
    ``length`` is the body's length in bytes when known, else None."""
    status = head.status
    keep_alive = keep_alive and not head.close
    parts = [_STATUS_LINES[status], head.lines]
    length = head.content_length
    if status == 204 or status == 304:
        framing = NO_BODY
    else:
        if length is None and body_length is not None:
            length = body_length
            parts.append(b"content-length: %d\r\n" % length)
        if length is not None:
            framing = NO_BODY if is_head else LENGTH
        elif http_version == "1.1":
            framing = NO_BODY if is_head else CHUNKED
            parts.append(_CHUNKED_LINE)
        else:
            framing = NO_BODY if is_head else CLOSE_DELIMITED
            keep_alive = False
    if date and not head.has_date:
        parts.append(date)
    if server and not head.has_server:
        parts.append(server)
    if not keep_alive:
        parts.append(_CLOSE_LINE)
    elif http_version == "1.0":
        parts.append(_KEEP_ALIVE_LINE)
    parts.append(b"\r\n")
    return b"".join(parts), framing, length, keep_alive


def frame_chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (empty data gives empty bytes: no chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def error_response(status: int, reason: str, *, date: bytes = b"", server: bytes = b"",
                   extra: bytes = b"") -> bytes:
    """A whole plain-text response the server sends itself (``connection: close``): the status
    line, ``reason`` as the body, and ``extra`` header lines (CRLF-ended bytes)."""
    body = f"{http.HTTPStatus(status).phrase}: {reason}\n".encode("utf-8")
    return b"".join([_STATUS_LINES[status], b"content-type: text/plain; charset=utf-8\r\n",
                     b"content-length: %d\r\n" % len(body), extra, date, server, _CLOSE_LINE,
                     b"\r\n", body])
