"""HTTP/1.1 on one asyncio stream connection, parsed and framed by h11 (sans-IO).

h11 turns the bytes read into events (request head, body data, end of message) and the responses into
bytes; this module only reads, feeds and writes, so the caller keeps full control of when a response is
written, whether one is written at all, and when the connection closes. A request h11 rejects (bad or
conflicting Content-Length, a malformed request line or header, an unsupported transfer coding, a body
cut short by the client's close, a header block over the limit) and an HTTP version other than 1.0 or
1.1 raise `MalformedRequest` with the status to answer; `HttpConnection.reject` answers it and closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

import h11

#: Largest request head (request line and header fields) served; a larger one is answered with 431.
MAX_HEADER_BYTES = 65_536
#: Most one read takes from the connection's buffer (which holds up to twice this before the socket is
#: no longer read). Small steps keep the buffers in cache and let other connections' responses leave
#: between them: a 1 MB body costs less CPU in 64 KiB steps than in 256 KiB or 1 MiB ones.
READ_BYTES = 65_536
#: After answering a malformed request the connection is half-closed and what the client still sends is
#: read and dropped for at most this long, so that closing does not reset the connection (and discard
#: the answer) while request bytes are still unread.
LINGER_S = 1.0
#: Reason phrases as API Gateway and the ALB write them; other statuses use the standard phrase.
_REASONS = {413: "Request Entity Too Large", 504: "Gateway Timeout"}
_VERSIONS = (b"1.0", b"1.1")


def reason_phrase(status: int) -> str:
    """The status line's reason phrase ("Request Header Fields Too Large" for 431)."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class MalformedRequest(Exception):
    """A request that cannot be served: `status` (4xx/5xx) to answer with, `message` saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One complete request: method, path (the target without its query) and the whole body (chunked
    bodies decoded). `headers_at_s` is time.monotonic() when its head had arrived; `keep_alive` is False
    when the client asked to close after the response (Connection: close, or HTTP/1.0)."""
    method: str
    path: str
    body: bytes
    headers_at_s: float
    keep_alive: bool


def _keep_alive(request: h11.Request) -> bool:
    tokens = {token.strip().lower() for name, value in request.headers if name == b"connection"
              for token in value.split(b",")}
    return request.http_version == b"1.1" and b"close" not in tokens


def _head_bytes(request: h11.Request) -> int:
    """Size of the request head as the client wrote it (request line, header fields, blank line)."""
    fields = sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())
    return len(request.method) + len(request.target) + len(request.http_version) + 9 + fields + 2


class HttpConnection:
    """One client connection: reads one request at a time (nothing while its response is pending) and
    writes whole responses; keep-alive follows the request (Connection: close, HTTP/1.0) as h11 decides."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._method = b""

    async def read_request(self) -> HttpRequest | None:
        """The next complete request, or None when the client closed the connection between requests.
        Raises MalformedRequest for a request that cannot be served, ConnectionError if the socket fails."""
        conn = self._h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        self._method = b""
        head: h11.Request | None = None
        headers_at_s = 0.0
        chunks: list[bytes | bytearray] = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise MalformedRequest(exc.error_status_hint, str(exc)) from exc
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    self._writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[],
                                                                           reason=b"Continue")))
                conn.receive_data(await self._reader.read(READ_BYTES))
            elif isinstance(event, h11.Request):
                headers_at_s = time.monotonic()
                self._method = event.method
                if event.http_version not in _VERSIONS:
                    raise MalformedRequest(505, f"HTTP/{event.http_version.decode()} is not supported "
                                                f"(HTTP/1.0 and HTTP/1.1 are)")
                if _head_bytes(event) > MAX_HEADER_BYTES:
                    raise MalformedRequest(431, f"request head of {_head_bytes(event)} bytes is over the "
                                                f"limit of {MAX_HEADER_BYTES}")
                head = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if head is None:        # h11 emits a request's head before its end
                    raise MalformedRequest(400, "message end without a request")
                path = head.target.split(b"?", 1)[0].decode("latin-1")
                return HttpRequest(head.method.decode("ascii"), path, b"".join(chunks), headers_at_s,
                                   _keep_alive(head))
            else:                        # ConnectionClosed: the client left between requests
                return None

    async def respond(self, status: int, body: bytes, content_type: str,
                      headers: Mapping[str, str] | None = None, *, close: bool = False) -> bool:
        """Write one whole response to the current request. True when the connection can carry the
        next request, False when it must close (the client said so, or `close`)."""
        conn = self._h11
        fields = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                  ("Connection", "close" if close else "keep-alive"), *(headers or {}).items()]
        out = conn.send(h11.Response(status_code=status, headers=fields, reason=reason_phrase(status).encode()))
        if self._method != b"HEAD":       # a response to HEAD announces the body without sending it
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        self._writer.write(out)
        await self._writer.drain()
        return not close and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def reject(self, error: MalformedRequest) -> None:
        """Answer a malformed request with its status and a plain-text reason, then close gracefully:
        half-close, and drop what the client still sends (at most LINGER_S) until it closes too."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            await self.respond(error.status, f"{reason_phrase(error.status)}: {error.message}\n".encode(),
                               "text/plain", close=True)
        except h11.LocalProtocolError:
            return
        try:
            if self._writer.can_write_eof():
                self._writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await self._reader.read(READ_BYTES):
                    pass
        except (TimeoutError, OSError):
            pass
