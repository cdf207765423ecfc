"""One network namespace per broker, joined by veth pairs to a bridge in the test's own
namespace (where the clients run), and the faults on it.

Cuts are nftables drops on the receiving side's input hook, so "a to b" is silent for b
and a keeps sending into the void, as with a real partition (a route or a downed link
would give the sender an immediate error instead). Loss is nftables' random drop, on what
a broker receives, sends, or both. Bandwidth limits are htb (a rate) or tbf (a rate and a
deep queue: delay under load). Delay is the kernel's netem qdisc where it exists, else a
userspace relay (relay.py) that nftables DNATs a broker's TCP connections through; packet
reordering needs netem (nothing else here can hold one packet back and let a later one
pass): without it that fault is left out of a schedule and the reason printed
(`Network.missing`)."""

from __future__ import annotations

import itertools
import os
import select
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.relay import MARK

HOST = -1  # the test's own namespace, where the clients are
RELAY_OUT, RELAY_IN = 9192, 9193  # the delay relay's ports, in the delayed namespace
ROOT = Path(__file__).resolve().parents[2]  # where `python -m tests.chaos.relay` runs


class NetError(RuntimeError):
    pass


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def unavailable() -> str | None:
    """Why namespaced chaos cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables, tmpfs mounts)"
    for tool in ("ip", "tc", "nft", "gcc"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH (Debian: iproute2, nftables, gcc; make chaos-tools)"
    return None


_SERIAL = itertools.count()


def remove_stale() -> None:
    """Namespaces and bridges of runs whose process is gone (killed before its cleanup)."""
    listed = run("ip", "netns", "list", check=False).stdout.split()
    for name in listed:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "chaos" and parts[1].isdigit() \
                and not _alive(int(parts[1][:-1])):
            run("ip", "netns", "del", name, check=False)
            run("ip", "link", "del", f"chb{parts[1]}", check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Network:
    """Namespaces chaos-<tag>-<i>, addresses 10.<a>.<b>.(i+1), the host side .254."""

    count: int
    port: int = 9092  # the brokers' port (the delay relay takes their connections)
    # The pid and a digit counting this process's networks: a network's names must not
    # meet the previous one's, whose veths the kernel may still be removing.
    tag: str = field(default_factory=lambda: f"{os.getpid()}{next(_SERIAL) % 10}")
    namespaces: list[str] = field(default_factory=list)
    # Faults this kernel cannot make, with the reason.
    missing: dict[str, str] = field(default_factory=dict)
    _bridge: str = ""
    _subnet: str = ""
    _shaped: set[int] = field(default_factory=set)
    _netem: bool = False
    _relays: dict[int, subprocess.Popen[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = int(self.tag)
        self._subnet = f"10.{200 + n % 50}.{n % 250}"
        self._bridge = f"chb{self.tag}"

    def address(self, i: int) -> str:
        return f"{self._subnet}.{254 if i == HOST else i + 1}"

    def veth(self, i: int) -> str:
        return f"ch{self.tag}h{i}"

    def setup(self) -> Network:
        try:
            self._setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def _setup(self) -> None:
        remove_stale()
        run("ip", "link", "add", self._bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.address(HOST)}/24", "dev", self._bridge)
        run("ip", "link", "set", self._bridge, "up")
        for i in range(self.count):
            ns = f"chaos-{self.tag}-{i}"
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            run("ip", "link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            run("ip", "link", "set", self.veth(i), "master", self._bridge, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            self._nft(i, "add table inet chaos")
            for hook in ("input", "output"):
                self._nft(i, f"add chain inet chaos {hook} {{ type filter hook {hook} "
                          "priority 0; }")
        probe = run("ip", "netns", "exec", self.namespaces[0], "tc", "qdisc", "add", "dev",
                    "eth0", "root", "netem", "delay", "1ms", check=False)
        if probe.returncode != 0:
            self.missing["reorder"] = f"this kernel has no netem qdisc " \
                f"({probe.stderr.strip()}); delay goes through a userspace relay instead"
        else:
            self._netem = True
            run("ip", "netns", "exec", self.namespaces[0], "tc", "qdisc", "del", "dev",
                "eth0", "root")

    def teardown(self) -> None:
        self._stop_relays()
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)  # takes its veth end, and the pair
        self.namespaces.clear()
        run("ip", "link", "del", self._bridge, check=False)

    def _nft(self, i: int, rule: str) -> None:
        run("ip", "netns", "exec", self.namespaces[i], "nft", rule)

    def cut(self, src: int, dst: int) -> None:
        """Packets from src (a broker, or HOST for the clients) no longer reach dst."""
        if dst == HOST:
            # The clients' namespace has no table of ours: drop on the way out of src.
            self._nft(src, f"add rule inet chaos output ip daddr {self.address(HOST)} drop")
            return
        self._nft(dst, f"add rule inet chaos input ip saddr {self.address(src)} drop")

    def loss(self, i: int, percent: int, hooks: tuple[str, ...] = ("input",)) -> None:
        """Drops percent% of the packets broker i receives (input), sends (output) or
        both, at random."""
        for hook in hooks:
            self._nft(i, f"add rule inet chaos {hook} numgen random mod 100 < {percent} drop")

    def delay(self, i: int, ms: int, jitter_ms: int = 0, reorder: int = 0,
              seed: int = 0) -> None:
        """Delays what broker i sends: netem, or without it the relay (TCP only, which is
        all the brokers speak); with reorder (netem only), that percentage goes at once."""
        if not self._netem:
            if reorder:
                raise NetError(self.missing["reorder"])
            self._relay(i, ms, jitter_ms, seed)
            return
        args = ["delay", f"{ms}ms"] + ([f"{jitter_ms}ms"] if jitter_ms else [])
        if reorder:
            args += ["reorder", f"{reorder}%"]
        run("ip", "netns", "exec", self.namespaces[i], "tc", "qdisc", "replace", "dev",
            "eth0", "root", "netem", *args)
        self._shaped.add(i)

    def slow(self, i: int, kbit: int) -> None:
        """Caps what broker i sends at kbit/s (htb): a congested link, which this kernel can
        make without netem; its queue adds delay under load."""
        ns = self.namespaces[i]
        run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
            "handle", "1:", "htb", "default", "1")
        run("ip", "netns", "exec", ns, "tc", "class", "replace", "dev", "eth0", "parent",
            "1:", "classid", "1:1", "htb", "rate", f"{kbit}kbit", "ceil", f"{kbit}kbit")
        self._shaped.add(i)

    def queue(self, i: int, kbit: int, latency_ms: int) -> None:
        """Caps what broker i sends at kbit/s with a queue of latency_ms (tbf): under load
        its packets wait up to that long, and beyond it they are dropped."""
        run("ip", "netns", "exec", self.namespaces[i], "tc", "qdisc", "replace", "dev", "eth0",
            "root", "tbf", "rate", f"{kbit}kbit", "burst", "16kb", "latency",
            f"{latency_ms}ms")
        self._shaped.add(i)

    def _relay(self, i: int, ms: int, jitter_ms: int, seed: int) -> None:
        """Every TCP connection broker i makes or takes goes through a relay in its
        namespace that sends what i sends ms ± jitter_ms late. Its open connections are
        reset (ss -K) so that they come back through the relay: a delay that began with
        a reconnection (only new connections are DNATed)."""
        ns, addr = self.namespaces[i], self.address(i)
        self._stop_relay(i)  # a delay on a delay: the new one replaces it
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.chaos.relay",
             "--outgoing", f"{addr}:{RELAY_OUT}", "--incoming", f"{addr}:{RELAY_IN}",
             "--delay-ms", str(ms), "--jitter-ms", str(jitter_ms), "--seed", str(seed)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._relays[i] = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        if "listening" not in line:
            raise NetError(f"the delay relay of broker {i} did not start: {line!r}")
        for rule in ("add table ip chaosdelay",
                     "add chain ip chaosdelay out { type nat hook output priority -100; }",
                     "add chain ip chaosdelay pre { type nat hook prerouting priority -100; }",
                     f"add rule ip chaosdelay out meta mark != {MARK} ip daddr != {addr} "
                     f"tcp dport {self.port} dnat to {addr}:{RELAY_OUT}",
                     f"add rule ip chaosdelay pre tcp dport {self.port} "
                     f"dnat to {addr}:{RELAY_IN}"):
            self._nft(i, rule)
        run("ip", "netns", "exec", ns, "ss", "-K", "-t", "state", "established",
            f"( dport = :{self.port} or sport = :{self.port} )")

    def _stop_relays(self) -> None:
        for i in sorted(self._relays):
            self._stop_relay(i)

    def _stop_relay(self, i: int) -> None:
        proc = self._relays.pop(i, None)
        if proc is None:
            return
        run("ip", "netns", "exec", self.namespaces[i], "nft", "delete table ip chaosdelay",
            check=False)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def heal(self) -> None:
        self._stop_relays()
        for i in range(len(self.namespaces)):
            self._nft(i, "flush table inet chaos")
        for i in sorted(self._shaped):
            run("ip", "netns", "exec", self.namespaces[i], "tc", "qdisc", "del", "dev",
                "eth0", "root", check=False)
        self._shaped.clear()
