"""A TCP relay that delays one direction of every connection through it: the harness's
network delay, for kernels without the netem qdisc (nor nft's queue statement, which a
userspace packet delayer would need).

    python -m tests.chaos.relay --outgoing ADDR:PORT --incoming ADDR:PORT --delay-ms 100

Run inside a broker's namespace, behind nftables DNATs of that broker's connections
(Network.delay): the ones it makes go to --outgoing, the ones made to it to --incoming.
For each, the relay finds the original destination (SO_ORIGINAL_DST), connects there with
a firewall mark the DNAT rules skip, and forwards what the broker sends delay ± jitter ms
late, in order (a byte stream cannot be reordered: TCP would put segments back in order
before anything reads them); what the broker receives passes at once. So the delay is
one way, on everything this broker sends over TCP, on connections of either side."""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import socket
import struct
import sys
import time

MARK = 0x42  # the DNAT rule lets this through, so the relay's own connections go direct
SO_ORIGINAL_DST = 80
CHUNK = 1 << 16


def original_destination(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


class DelayedPipe:
    """Copies reader to writer, each chunk due delay ± jitter after it was read, never
    before the one read ahead of it."""

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random) -> None:
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rng = rng

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        last = 0.0
        try:
            while data := await reader.read(CHUNK):
                due = time.monotonic() + self.delay_s + self.rng.uniform(-self.jitter_s,
                                                                          self.jitter_s)
                last = max(last, due)
                queue.put_nowait((last, data))
        finally:
            queue.put_nowait((0.0, b""))  # end of stream, once what is queued has gone
            await sender

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]],
                    writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(pipe: DelayedPipe, outgoing: bool, down_reader: asyncio.StreamReader,
                 down_writer: asyncio.StreamWriter) -> None:
    """down: the connection the DNAT brought here; up: the one to its destination.
    outgoing: this broker is down's side (its sends go up), else up's (they go down)."""
    sock = down_writer.get_extra_info("socket")
    try:
        host, port = original_destination(sock)
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        up.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(up, (host, port)), 5)
        up_reader, up_writer = await asyncio.open_connection(sock=up)
    except (OSError, TimeoutError):
        down_writer.close()  # the destination is unreachable: so is it through us
        return
    try:
        if outgoing:
            await asyncio.gather(pipe.run(down_reader, up_writer), copy(up_reader, down_writer))
        else:
            await asyncio.gather(copy(down_reader, up_writer), pipe.run(up_reader, down_writer))
    except (ConnectionError, OSError):
        pass
    finally:
        up_writer.close()
        down_writer.close()


def split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


async def serve(outgoing: str, incoming: str, pipe: DelayedPipe) -> None:
    servers = [await asyncio.start_server(functools.partial(handle, pipe, out),
                                          *split(address))
               for address, out in ((outgoing, True), (incoming, False))]
    print(f"relay listening on {outgoing} and {incoming}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outgoing", required=True, help="ADDR:PORT")
    parser.add_argument("--incoming", required=True, help="ADDR:PORT")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pipe = DelayedPipe(args.delay_ms / 1000, min(args.jitter_ms, args.delay_ms) / 1000,
                       random.Random(args.seed))
    try:
        asyncio.run(serve(args.outgoing, args.incoming, pipe))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
