"""The delay relay's pipe (no root needed): with jitter, chunks still leave in the order
they came (a byte stream must not be reordered), none earlier than the delay less the
jitter (a lower bound, which no speed of the machine breaks), and the end of the stream
comes after the last of them."""

from __future__ import annotations

import asyncio
import random
import time

from tests.chaos.relay import DelayedPipe


def test_jittered_chunks_keep_their_order_and_wait_out_the_delay() -> None:
    async def scenario() -> tuple[bytes, list[float]]:
        received = bytearray()
        arrivals: list[float] = []
        done = asyncio.Event()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1 << 16):
                received.extend(data)
                arrivals.append(time.monotonic())
            writer.close()
            done.set()

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        source = asyncio.StreamReader()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        pipe = DelayedPipe(0.05, 0.04, random.Random(7))
        task = asyncio.create_task(pipe.run(source, writer))
        started = time.monotonic()
        for i in range(50):
            source.feed_data(b"%03d," % i)
            await asyncio.sleep(0.002)
        source.feed_eof()
        await asyncio.wait_for(task, 10)
        await asyncio.wait_for(done.wait(), 10)
        server.close()
        return bytes(received), [a - started for a in arrivals]

    received, arrivals = asyncio.run(scenario())
    assert received == b"".join(b"%03d," % i for i in range(50))
    assert arrivals[0] >= 0.01
