"""A TCP proxy in front of PostgreSQL that makes a commit succeed but report an error.

Workers connect through it (``sslmode=disable&gssencmode=disable``, so the server's
side of the stream is nothing but typed protocol messages). When armed, it lets the
server answer a ``COMMIT`` (the transaction is durable by then) but swallows that
answer and cuts the connection: the client sees its commit fail, exactly as when a
network or a server dies at that moment, and retries a transaction that in fact
already committed.

It reads the client's statements (``Query`` and ``Parse`` messages) to know which
transaction a ``COMMIT`` ends, so a test can aim at one write site by a fragment of
its SQL.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Dropped:
    """A commit whose answer was swallowed: the statements of its transaction."""

    statements: list[str] = field(default_factory=list)


class CommitAckDropper:
    """Forward 127.0.0.1:<port> to ``upstream``; swallow the answers to chosen commits."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._match: tuple[str, ...] = ()
        self._left = 0
        self.dropped: list[Dropped] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def url(self, database: str, schema: str) -> str:
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
            f"?schema={schema}&sslmode=disable&gssencmode=disable"
        )

    def arm(self, *fragments: str, count: int = 1) -> None:
        """Swallow the answers of the next ``count`` commits of transactions whose
        statements contain every one of ``fragments``."""
        with self._lock:
            self._match, self._left = fragments, count

    def disarm(self) -> None:
        self.arm(count=0)

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    # -- plumbing ------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            statements: list[str] = []  # of the open transaction, shared by both directions
            threading.Thread(
                target=self._client_to_server, args=(client, server, statements), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(server, client, statements), daemon=True
            ).start()

    @staticmethod
    def _messages(buffer: bytearray) -> list[bytes]:
        """Complete typed messages at the front of ``buffer`` (removed from it)."""
        out = []
        while len(buffer) >= 5:
            length = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 1 + length:
                break
            out.append(bytes(buffer[: 1 + length]))
            del buffer[: 1 + length]
        return out

    def _client_to_server(
        self, client: socket.socket, server: socket.socket, statements: list[str]
    ) -> None:
        buffer = bytearray()
        started = False  # the startup message has no type byte
        try:
            while data := client.recv(65536):
                server.sendall(data)
                buffer += data
                if not started:
                    if len(buffer) < 4:
                        continue
                    length = int.from_bytes(buffer[:4], "big")
                    if len(buffer) < length:
                        continue
                    del buffer[:length]
                    started = True
                for message in self._messages(buffer):
                    if message[:1] == b"Q":
                        text = message[5:].split(b"\0", 1)[0]
                    elif message[:1] == b"P":
                        text = message[5:].split(b"\0", 2)[1]
                    else:
                        continue
                    sql = text.decode(errors="replace")
                    if sql.strip().upper() == "BEGIN":
                        statements.clear()
                    statements.append(sql)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _server_to_client(
        self, server: socket.socket, client: socket.socket, statements: list[str]
    ) -> None:
        buffer = bytearray()
        try:
            while data := server.recv(65536):
                buffer += data
                out = bytearray()
                for message in self._messages(buffer):
                    commit = message[:1] == b"C" and message[5:].rstrip(b"\0") == b"COMMIT"
                    if commit and self._take(statements):
                        client.sendall(out)
                        return  # committed on the server; the client never hears it
                    out += message
                client.sendall(out)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _take(self, statements: list[str]) -> bool:
        with self._lock:
            if self._left <= 0 or not self._match:
                return False
            if not all(any(f in s for s in statements) for f in self._match):
                return False
            self._left -= 1
            self.dropped.append(Dropped(list(statements)))
            return True


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
