"""A TCP proxy that can cut the line without closing it: ``freeze()`` stops forwarding
in both directions while every socket stays open, as a network partition does; ``close()``
ends every connection and refuses new ones, as a host that is gone."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.closed = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def freeze(self) -> None:
        self.flowing.clear()

    async def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers += [writer, up_writer]
        if self.closed:  # accepted while closing: ended like the others
            writer.close()
            up_writer.close()
            return
        for pump in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await self.flowing.wait()  # frozen: the bytes wait, the sockets stay open
                writer.write(data)
                await writer.drain()
        writer.close()
