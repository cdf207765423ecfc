"""The multi-broker parts of `make bench`: broker processes on loopback, acks=quorum
throughput on a 3-broker cluster, failover time after kill -9 of a leader, and the idle
CPU of brokers hosting many partitions. Used by bench/run.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from odradek.client.admin import Admin
from odradek.client.errors import OdradekError
from odradek.records import encode_batch
from odradek.v1 import odradek_pb2 as pb
from odradek.v1 import odradek_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def bench_workdir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for a bench's brokers: kept when the bench fails (to read
    their logs) or when asked, removed otherwise."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except BaseException:
        log(f"the bench failed: brokers' logs and data are kept in {workdir}")
        raise
    if keep:
        log(f"brokers' logs and data are in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def child_env() -> dict[str, str]:
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "odradek.cli.main", *args]


def free_ports(n: int) -> list[int]:
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Broker:
    """One `odradek broker` child process; its output goes to <data_dir>.log."""

    def __init__(self, data_dir: Path, port: int, args: list[str]) -> None:
        self.data_dir = data_dir
        self.port = port
        self.args = args
        self.log_path = data_dir.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                cli("broker", "--host", "127.0.0.1", "--port", str(self.port),
                    "--data-dir", str(self.data_dir), *self.args),
                env=child_env(), stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Until the gRPC health check says SERVING (the broker registered and its
        replicas know their leaders)."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if not self.alive():
                    code = self.proc.returncode if self.proc else None
                    raise SystemExit(f"broker {self.address} exited with code {code}; "
                                     f"see {self.log_path}:\n{self.tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise SystemExit(f"broker {self.address} not serving within {timeout:.0f} s; "
                         f"see {self.log_path}:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads), in seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Cluster:
    """n brokers on loopback, all metadata voters (n <= 3)."""

    def __init__(self, root: Path, n: int = 3, log_level: str = "WARNING",
                 extra: tuple[str, ...] = ()) -> None:
        ports = free_ports(n)
        voters = ",".join(f"{i}=127.0.0.1:{p}" for i, p in enumerate(ports))
        self.brokers = [
            Broker(root / f"broker-{i}", p,
                   ["--broker-id", str(i), "--voters", voters, "--log-level", log_level,
                    *extra])
            for i, p in enumerate(ports)]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def start(self) -> Cluster:
        for b in self.brokers:
            b.start()
        for b in self.brokers:
            b.wait_serving()
        return self

    def stop(self) -> None:
        for b in self.brokers:
            if b.alive() and b.proc is not None:
                b.proc.terminate()
        for b in self.brokers:
            b.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------- topics

def create_topics(bootstrap: str, names: list[str], partitions: int, rf: int = 3,
                  concurrency: int = 1) -> None:
    async def run() -> None:
        async with Admin(bootstrap, request_timeout_ms=120_000) as admin:
            sem = asyncio.Semaphore(concurrency)

            async def one(name: str) -> None:
                async with sem:
                    try:
                        await admin.create_topic(name, partitions, rf)
                    except OdradekError as exc:
                        if exc.reason != "TOPIC_ALREADY_EXISTS":
                            raise

            await asyncio.gather(*(one(n) for n in names))

    asyncio.run(run())


def describe(address: str, topic: str) -> pb.TopicDescription:
    with grpc.insecure_channel(address) as channel:
        reply: pb.TopicDescription = pb_grpc.AdminStub(channel).DescribeTopic(
            pb.DescribeTopicRequest(name=topic), timeout=10)
        return reply


def metadata(address: str, topics: list[str] | None = None) -> pb.MetadataResponse:
    with grpc.insecure_channel(address) as channel:
        reply: pb.MetadataResponse = pb_grpc.BrokerStub(channel).Metadata(
            pb.MetadataRequest(topics=topics or []), timeout=10)
        return reply


def leader_counts(cluster: Cluster, topics: list[str]) -> tuple[dict[int, int], int, int]:
    """(leaders per broker id, partitions led by their preferred replica, partitions)
    as the metadata of a live broker reports them."""
    live = next(b for b in cluster.brokers if b.alive())
    md = metadata(live.address, topics)
    counts = {i: 0 for i in range(len(cluster.brokers))}
    preferred = total = 0
    for t in md.topics:
        for p in t.partitions:
            total += 1
            if p.leader >= 0:
                counts[p.leader] = counts.get(p.leader, 0) + 1
                if p.replicas and p.leader == p.replicas[0]:
                    preferred += 1
    return counts, preferred, total


def wait_balanced(cluster: Cluster, topics: list[str], timeout: float) -> bool:
    """Until every partition is led by its preferred replica (the broker's balance loop
    hands leadership back every 5 s), or timeout. True if it got there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, preferred, total = leader_counts(cluster, topics)
            if preferred == total:
                return True
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def wait_caught_up(cluster: Cluster, topics: list[str], timeout: float = 60.0) -> float:
    """Until every live broker's replicas report the same high watermarks (with no writes
    going on). Returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    marks: list[dict[tuple[str, int], int]] = []
    while time.monotonic() < deadline:
        marks = []
        try:
            for b in cluster.brokers:
                if not b.alive():
                    continue
                mine: dict[tuple[str, int], int] = {}
                for t in topics:
                    for p in describe(b.address, t).partitions:
                        mine[(t, p.info.partition)] = p.high_watermark
                marks.append(mine)
        except grpc.RpcError:
            time.sleep(0.1)
            continue
        if all(m == marks[0] for m in marks):
            return time.monotonic() - start
        time.sleep(0.1)
    raise SystemExit(f"replicas did not catch up within {timeout:.0f} s: {marks}")


# ----------------------------------------------------------------------- failover

class Writer:
    """Writes 10-record batches of one partition in a loop with acks=quorum and no
    retries, like tests/integration/test_cluster.py's Writer: after an error it tries
    every live broker in turn until one takes the batch. Records when each ack came and
    which broker gave it."""

    def __init__(self, cluster: Cluster, topic: str) -> None:
        self.cluster = cluster
        self.topic = topic
        self.down: set[int] = set()
        self.acks: list[tuple[float, int]] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.n = 0

    def _produce(self, stub: pb_grpc.BrokerStub) -> None:
        values = [b"v-%08d" % (self.n + i) for i in range(10)]
        self.n += 10
        batch = encode_batch([(int(time.time() * 1000), None, v) for v in values])
        stub.Produce(pb.ProduceRequest(topic=self.topic, partition=0, records=batch,
                                       acks=pb.ACKS_QUORUM, timeout_ms=3000), timeout=4)

    def run(self) -> None:
        current: int | None = None
        channels: dict[int, grpc.Channel] = {}
        try:
            while not self.stop.is_set():
                order = ([current] if current is not None else []) + [
                    i for i in range(len(self.cluster.brokers)) if i != current]
                done = False
                for i in order:
                    if i in self.down or self.stop.is_set():
                        continue
                    channel = channels.get(i)
                    if channel is None:
                        channel = grpc.insecure_channel(self.cluster.brokers[i].address)
                        channels[i] = channel
                    try:
                        self._produce(pb_grpc.BrokerStub(channel))  # type: ignore[no-untyped-call]
                    except grpc.RpcError as exc:
                        self.errors += 1
                        if exc.code() == grpc.StatusCode.UNAVAILABLE:
                            channels.pop(i).close()  # reconnect afresh next time
                        if i == current:
                            current = None
                        continue
                    self.acks.append((time.monotonic(), i))
                    current = i
                    done = True
                    break
                if not done:
                    time.sleep(0.005)
        finally:
            for channel in channels.values():
                channel.close()

    def leader(self) -> int | None:
        return self.acks[-1][1] if self.acks else None

    def wait_acks(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the writer got only {len(self.acks)} acks of {count} "
                                 f"({self.errors} errors)")
            time.sleep(0.01)

    def first_ack_after(self, t0: float, not_from: int, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            after = [t for t, broker in self.acks[-5000:] if t > t0 and broker != not_from]
            if after:
                return min(after) - t0
            time.sleep(0.005)
        raise SystemExit(f"no ack from a new leader within {timeout:.0f} s of the kill")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def failover_bench(workdir: Path, tries: int, progress: Callable[[str], None] = log
                   ) -> dict[str, Any]:
    """kill -9 of the leader of a 1-partition RF=3 topic under a continuous acks=quorum
    writer; time to the first ack from a new leader. The killed broker is restarted and
    caught up between tries. Three topics take turns so the victim varies."""
    topics = [f"failover-{i}" for i in range(3)]
    results: list[dict[str, Any]] = []
    with Cluster(workdir / "failover") as cluster:
        create_topics(cluster.bootstrap, topics, 1, 3)
        wait_balanced(cluster, topics, 20)
        for attempt in range(tries):
            topic = topics[attempt % len(topics)]
            writer = Writer(cluster, topic)
            writer.thread.start()
            try:
                writer.wait_acks(100)
                victim = writer.leader()
                assert victim is not None
                try:
                    controller = metadata(cluster.brokers[(victim + 1) % 3].address,
                                          [topic]).controller_id
                except grpc.RpcError:
                    controller = -1
                writer.down.add(victim)
                time.sleep(0.02)  # the writer is mid-stream on the victim
                killed_at = time.monotonic()
                cluster.brokers[victim].kill9()
                seconds = writer.first_ack_after(killed_at, victim)
                new_leader = writer.leader()
                writer.wait_acks(len(writer.acks) + 20)
            finally:
                writer.close()
            restart_at = time.monotonic()
            cluster.brokers[victim].start()
            cluster.brokers[victim].wait_serving()
            serving = time.monotonic() - restart_at
            caught_up = wait_caught_up(cluster, topics)
            balanced = wait_balanced(cluster, topics, 20)
            results.append({"try": attempt + 1, "topic": topic, "victim": victim,
                            "victim_was_controller": victim == controller,
                            "new_leader": new_leader, "failover_s": round(seconds, 4),
                            "restart_serving_s": round(serving, 2),
                            "catch_up_s": round(caught_up, 2), "rebalanced": balanced})
            progress(f"failover try {attempt + 1}/{tries}: {seconds * 1000:.0f} ms "
                     f"(killed broker {victim}{' (controller)' if victim == controller else ''}"
                     f", new leader {new_leader}; restarted and serving in {serving:.1f} s)")
    times = sorted(r["failover_s"] for r in results)
    return {
        "tries": len(times),
        "median_s": round(statistics.median(times), 4),
        "min_s": round(times[0], 4),
        "max_s": round(times[-1], 4),
        "all": results,
    }


# ----------------------------------------------------------------------- idle CPU

def sample_cpu(brokers: list[Broker], seconds: float) -> list[float]:
    """CPU% (of one core) of each broker over the next `seconds`."""
    before = [b.cpu_seconds() for b in brokers]
    t0 = time.monotonic()
    time.sleep(seconds)
    after = [b.cpu_seconds() for b in brokers]
    elapsed = time.monotonic() - t0
    return [round((a - b) / elapsed * 100, 1) for a, b in zip(after, before, strict=True)]


def idle_cpu_bench(workdir: Path, topics: int, partitions: int, settle_s: float,
                   window_s: float, profile: Callable[[Cluster], None] | None = None,
                   progress: Callable[[str], None] = log) -> dict[str, Any]:
    names = [f"idle-{i}" for i in range(topics)]
    with Cluster(workdir / "idle") as cluster:
        progress(f"idle cluster up; CPU with no partitions over {window_s / 2:.0f} s ...")
        baseline = sample_cpu(cluster.brokers, window_s / 2)
        t0 = time.monotonic()
        create_topics(cluster.bootstrap, names, partitions, 3)
        created = time.monotonic() - t0
        progress(f"created {topics} x {partitions} partitions (RF=3) in {created:.1f} s; "
                 "waiting for leaders to settle ...")
        balanced = wait_balanced(cluster, names, 60)
        settled = time.monotonic() - t0
        time.sleep(settle_s)
        counts, preferred, total = leader_counts(cluster, names)
        progress(f"leaders per broker {counts}; CPU over {window_s:.0f} s ...")
        cpu = sample_cpu(cluster.brokers, window_s)
        if profile is not None:
            profile(cluster)
        alive = [b.alive() for b in cluster.brokers]
    return {
        "partitions": topics * partitions, "topics": topics, "replication_factor": 3,
        "create_s": round(created, 1), "settle_s": round(settled, 1),
        "balanced": balanced, "leaders_per_broker": counts,
        "preferred_leaders": preferred, "window_s": window_s,
        "cpu_percent_per_broker": cpu, "cpu_percent_no_partitions": baseline,
        "brokers_alive_after": alive,
    }
