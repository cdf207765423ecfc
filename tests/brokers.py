"""Real broker processes for tests: free ports on 127.0.0.1, temporary data, bounded waits,
and always stopped."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from odradek.security.certs import Pki
from odradek.security.tls import ClientTLS
from odradek.v1 import groups_pb2, groups_pb2_grpc
from odradek.v1 import odradek_pb2_grpc as pb_grpc

START_TIMEOUT_S = 30.0


def client_tls(pki: Pki) -> ClientTLS:
    """What a test client presents and trusts to reach brokers started with `tls_args`."""
    return ClientTLS(pki.ca, pki.client_cert, pki.client_key)


def tls_args(pki: Pki, cert: Path | None = None, key: Path | None = None) -> list[str]:
    """Broker flags for a TLS-only listener that requires client certificates of `pki`."""
    return ["--listener", "tls", "--tls-cert", str(cert or pki.broker_cert),
            "--tls-key", str(key or pki.broker_key), "--tls-ca", str(pki.ca),
            "--tls-client-auth", "required"]


def commit_group_offsets(brokers: list[BrokerProcess], group: str, topic: str,
                         offsets: dict[int, int], timeout: float = 30.0) -> None:
    """Commits offsets for a group (no members) on its coordinator, then describes the group,
    which also refreshes the coordinator's log end offsets: the group's lag metrics exist
    from then on. Retries while the coordinator is being made (UNAVAILABLE) or moves."""
    request = groups_pb2.CommitOffsetsRequest(group_id=group, offsets=[
        groups_pb2.OffsetCommit(topic=topic, partition=p, offset=o) for p, o in offsets.items()])
    by_address = {b.address: b for b in brokers}
    deadline = time.monotonic() + timeout
    while True:
        try:
            with brokers[0].health_channel() as channel:
                reply = groups_pb2_grpc.GroupsStub(channel).FindCoordinator(  # type: ignore[no-untyped-call]
                    groups_pb2.FindCoordinatorRequest(group_id=group), timeout=5)
            with by_address[reply.address].health_channel() as channel:
                stub = groups_pb2_grpc.GroupsStub(channel)  # type: ignore[no-untyped-call]
                stub.CommitOffsets(request, timeout=5)
                stub.DescribeGroup(groups_pb2.DescribeGroupRequest(group_id=group), timeout=5)
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Polls check() until it holds; TimeoutError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def terminate(proc: subprocess.Popen[Any], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after timeout seconds; the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def ipv6_loopback() -> bool:
    """Whether ::1 works here (containers may have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


_given: set[int] = set()
_pick = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free on 127.0.0.1 now, below the kernel's ephemeral range: a port the kernel
    handed out (bind to 0) can be taken by another connection's local end before the
    broker that was given it binds it (seen in CI: "the port is in use"). Never the same
    port twice in one test run."""
    high = _ephemeral_low() - 1
    low = 20000 if high > 20000 + 1000 else 1024
    for _ in range(200):
        port = _pick.randrange(low, high)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded range
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerProcess:
    """`odradek broker` in a child process, with its log captured to a file."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 extra_args: list[str] | None = None, metrics_port: int | None = None,
                 tls: ClientTLS | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        # How the health checks reach a TLS listener (None: plaintext).
        self.tls = tls
        self.port = port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.extra_args = extra_args or []
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # What runs the broker (e.g. `ip netns exec NS`) and what its environment adds.
        self.prefix: list[str] = []
        self.env: dict[str, str] = {}

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def scrape(self, timeout: float = 10.0) -> str:
        """The text of this broker's /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as reply:
            return str(reply.read().decode())

    def start(self, wait: bool = True) -> BrokerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*self.prefix, sys.executable, "-m", "odradek.cli.main", "broker",
               "--host", self.host, "--port", str(self.port),
               "--metrics-port", str(self.metrics_port), "--data-dir", str(self.data_dir),
               *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # not left running past a test whose set-up failed
                raise
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with self.health_channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"broker on {self.address} not ready in {timeout}s:\n{self.log()}")

    def health_channel(self) -> grpc.Channel:
        if self.tls is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, self.tls.credentials(),
                                   options=self.tls.channel_options())

    def serving(self) -> bool:
        """One bounded health check: is the broker SERVING now?"""
        with self.health_channel() as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        return terminate(self.proc, timeout)

    def stubs(self, channel: grpc.Channel) -> tuple[pb_grpc.BrokerStub, pb_grpc.AdminStub]:
        return pb_grpc.BrokerStub(channel), pb_grpc.AdminStub(channel)


class ClusterProcesses:
    """n brokers on free ports, all of them (up to 3) metadata voters."""

    def __init__(self, root: Path, count: int = 3, extra_args: list[str] | None = None,
                 tls: ClientTLS | None = None) -> None:
        ports = [free_port() for _ in range(count)]
        voters = ",".join(f"{i}=127.0.0.1:{p}" for i, p in enumerate(ports[:3]))
        self.brokers = [
            BrokerProcess(root / f"broker-{i}", port,
                          ["--broker-id", str(i), "--voters", voters, *(extra_args or [])],
                          tls=tls)
            for i, port in enumerate(ports)]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    def start(self) -> ClusterProcesses:
        try:
            for broker in self.brokers:
                broker.start(wait=False)
            for broker in self.brokers:
                broker.wait_ready()
        except BaseException:
            # One broker failing to start left the others running past the test (seen:
            # two brokers of a failed fixture still up an hour later).
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for broker in self.brokers:
            broker.stop()


@contextlib.contextmanager
def paused_safely(cluster: ClusterProcesses) -> Iterator[ClusterProcesses]:
    """Stops a cluster whose brokers a test may have left paused (SIGSTOP)."""
    try:
        yield cluster
    finally:
        for broker in cluster.brokers:
            broker.signal(signal.SIGCONT)
        cluster.stop()
