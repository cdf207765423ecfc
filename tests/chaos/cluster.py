"""A cluster of real broker processes, each in its own network namespace with its data on
its own small tmpfs (so that its disk can fill) and an fsync shim preloaded (so that its
fsyncs can fail or stall), and every fault the schedules use."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

from odradek.records.batch import check_batch, iter_batches
from odradek.records.reader import iter_records
from tests.brokers import BrokerProcess, wait_until
from tests.chaos.net import HOST, Network, run

PORT = 9092
META_DIR = "__meta"  # the metadata log's directory in a voter's data dir (cluster.py)
DISK_MB = 256
# Every write is fsynced before it is acknowledged, so that "acknowledged" means durable
# and a failed fsync has something to fail.
TOPIC_CONFIGS = {"flush.messages": "1"}

Records = list[tuple[int, bytes]]


def build_shim(out_dir: Path) -> Path:
    shim = out_dir / "fsync_shim.so"
    source = Path(__file__).with_name("fsync_shim.c")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-ldl"],
                   check=True, capture_output=True, timeout=60)
    return shim


class ChaosBroker(BrokerProcess):
    def __init__(self, index: int, root: Path, net: Network, voters: str, shim: Path,
                 extra_args: list[str]) -> None:
        self.index = index
        self.mount = root / f"disk-{index}"
        super().__init__(self.mount / "data", PORT, ["--broker-id", str(index), "--voters",
                                                     voters, "--metrics-port", "0",
                                                     *extra_args], host=net.address(index))
        # Outside the tmpfs: a full disk must not stop the log that explains it.
        self.log_path = root / f"broker-{index}.log"
        self.fsync_ctl = root / f"fsync-{index}"
        self.ballast = self.mount / "ballast"
        self.prefix = ["ip", "netns", "exec", net.namespaces[index]]
        self.env = {"LD_PRELOAD": str(shim), "CHAOS_FSYNC_CTL": str(self.fsync_ctl)}
        self.paused = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def fill_disk(self) -> None:
        """Takes every free block but a few, so that the next appends fail with ENOSPC."""
        with open(self.ballast, "ab") as f:
            # The broker writes meanwhile: take a little less each time space runs out.
            for slack in range(4096, 64 << 20, 1 << 20):
                stat = os.statvfs(self.mount)
                free = stat.f_bavail * stat.f_frsize
                if free <= slack:
                    return
                try:
                    os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size,
                                       free - slack)
                    return
                except OSError:
                    continue

    def free_disk(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def fsync_mode(self, mode: str) -> None:
        self.fsync_ctl.write_text(mode)

    def partition_dirs(self, topic: str) -> dict[int, Path]:
        found: dict[int, Path] = {}
        for path in self.data_dir.glob(f"{topic}-*"):
            suffix = path.name[len(topic) + 1:]
            if suffix.isdigit() and path.is_dir():
                found[int(suffix)] = path
        return found

    def flip_bit(self, topic: str, rng: random.Random) -> str | None:
        """Flips one bit inside a stored batch of a random segment of topic's partitions
        on this stopped broker. Returns what it did."""
        dirs = self.partition_dirs(topic)
        return self._flip([s for d in dirs.values() for s in sorted(d.glob("*.log"))], rng)

    def flip_meta_bit(self, rng: random.Random) -> str | None:
        """The same in this stopped voter's metadata log (a command's batch)."""
        return self._flip(sorted((self.data_dir / META_DIR).glob("*.log")), rng)

    def _flip(self, segments: list[Path], rng: random.Random) -> str | None:
        """Flips one bit inside a data batch (past its CRC field, so the CRC covers it)."""
        assert not self.alive
        segments = [s for s in segments if s.stat().st_size > 0]
        if not segments:
            return None
        segment = rng.choice(segments)
        raw = bytearray(segment.read_bytes())
        batches = list(iter_batches(bytes(raw)))
        data = [(pos, h) for pos, h in batches if not h.is_control and h.record_count]
        if not data:
            return None
        pos, header = rng.choice(data)
        # 21: past baseOffset, length, epoch, magic and CRC: inside what the CRC covers.
        at = pos + 21 + rng.randrange(header.size - 21)
        raw[at] ^= 1 << rng.randrange(8)
        segment.write_bytes(bytes(raw))
        return f"{segment.relative_to(self.data_dir)} byte {at} (batch at {pos})"

    def stored(self, topic: str) -> dict[int, tuple[Records, str | None]]:
        """Each local partition's data records from its files, and the first bad batch."""
        return {partition: read_log(path)
                for partition, path in self.partition_dirs(topic).items()}

    def meta_stored(self) -> tuple[Records, str | None]:
        """This voter's metadata commands from its files, and the first bad batch."""
        return read_log(self.data_dir / META_DIR)


def read_log(path: Path) -> tuple[Records, str | None]:
    """A log directory's data records, CRC-checked, up to the first bad batch."""
    records: Records = []
    for segment in sorted(path.glob("*.log"), key=lambda p: int(p.stem)):
        raw = segment.read_bytes()
        try:
            for pos, header in iter_batches(raw):
                check_batch(raw, pos, pos + header.size)
            records += [(r.offset, r.value or b"") for r in iter_records(raw)]
        except ValueError as exc:
            return records, f"{segment.name}: {exc}"
    return records, None


class ChaosCluster:
    """count brokers (the first three are the metadata voters) on their namespaces."""

    def __init__(self, root: Path, count: int = 5, extra_args: list[str] | None = None
                 ) -> None:
        self.root = root
        self.net = Network(count)
        self.brokers: list[ChaosBroker] = []
        self.mounts: list[Path] = []
        self.extra_args = extra_args or []

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def start(self) -> ChaosCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.net.setup()
        shim = build_shim(self.root)
        count = self.net.count
        voters = ",".join(f"{i}={self.net.address(i)}:{PORT}" for i in range(min(3, count)))
        for i in range(count):
            broker = ChaosBroker(i, self.root, self.net, voters, shim, self.extra_args)
            broker.mount.mkdir(parents=True)
            run("mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(broker.mount))
            self.mounts.append(broker.mount)
            self.brokers.append(broker)
        for broker in self.brokers:
            broker.start(wait=False)
        for broker in self.brokers:
            broker.wait_ready()

    def stop(self) -> None:
        """Everything started is stopped and undone, whatever state a fault left it in."""
        for broker in self.brokers:
            broker.resume()
        for broker in self.brokers:
            broker.stop()
        for mount in self.mounts:
            run("umount", "-l", str(mount), check=False)
        self.mounts.clear()
        self.net.teardown()

    def heal(self) -> None:
        """Every fault undone: links, pauses, disks, fsyncs; dead brokers started again."""
        self.net.heal()
        for broker in self.brokers:
            broker.resume()
            broker.free_disk()
            broker.fsync_mode("ok")
        for broker in self.brokers:
            if not broker.alive:
                broker.start(wait=False)
        for broker in self.brokers:
            broker.wait_ready()

    def restart(self, broker: ChaosBroker, clean: bool) -> None:
        if clean:
            broker.stop()
        else:
            broker.kill9()
        broker.start(wait=False)

    def isolate_from_clients(self, i: int) -> None:
        self.net.cut(HOST, i)
        self.net.cut(i, HOST)

    def wait_serving(self, timeout: float = 60.0) -> None:
        wait_until(lambda: all(b.serving() for b in self.brokers), timeout,
                   "every broker serving")
