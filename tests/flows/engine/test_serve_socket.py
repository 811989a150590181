"""The socket ``fireline serve`` listens on gives connections with Nagle's algorithm off.

asyncio sets TCP_NODELAY only on sockets whose ``proto`` is TCP, and accepted connections inherit
the listening socket's. With Nagle on, each answer's body (written after its headers) waited for the
client's delayed ACK: an alert storm was held at ~700 answers/s by ~40 ms per request.
"""

from __future__ import annotations

import asyncio
import socket

from flows.engine.serve import _bind


def _nodelay_of_accepted(sock: socket.socket) -> int:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            try:
                return await seen
            finally:
                writer.close()

    return asyncio.run(main())


def test_connections_accepted_by_serve_have_nagle_off() -> None:
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert _nodelay_of_accepted(sock) == 1
    finally:
        sock.close()


def test_a_socket_made_without_the_tcp_proto_would_keep_nagle_on() -> None:
    # The sibling of the fault: what _bind did before, read at the accepted connection.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        assert _nodelay_of_accepted(sock) == 0
    finally:
        sock.close()
