"""One network namespace per broker, joined by veth pairs to a bridge in the test's own
namespace (where the clients run), and the faults on it.

Cuts are nftables drops on the receiving side's input hook, so "a to b" is silent for b
and a keeps sending into the void, as with a real partition (a route or a downed link
would give the sender an immediate error instead). Loss is nftables' random drop; delay
and reordering need the kernel's netem qdisc, which some kernels lack: then those faults
are left out of a schedule and the reason printed (`Network.missing`)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

HOST = -1  # the test's own namespace, where the clients are


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
    # The pid and a digit counting this process's networks: a network's names must not
    # meet the previous one's, whose veths the kernel may still be removing.
    tag: str = field(default_factory=lambda: f"{os.getpid()}{next(_SERIAL) % 10}")
    namespaces: list[str] = field(default_factory=list)
    # Faults this kernel cannot make, with the reason.
    missing: dict[str, str] = field(default_factory=dict)
    _bridge: str = ""
    _subnet: str = ""
    _shaped: set[int] = field(default_factory=set)

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
            reason = f"this kernel has no netem qdisc ({probe.stderr.strip()})"
            self.missing.update(delay=reason, reorder=reason)
        else:
            run("ip", "netns", "exec", self.namespaces[0], "tc", "qdisc", "del", "dev",
                "eth0", "root")

    def teardown(self) -> None:
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

    def loss(self, i: int, percent: int) -> None:
        """Drops percent% of the packets broker i receives, at random."""
        self._nft(i, f"add rule inet chaos input numgen random mod 100 < {percent} drop")

    def delay(self, i: int, ms: int, jitter_ms: int = 0, reorder: int = 0) -> None:
        """Delays what broker i sends (netem); with reorder, that percentage goes at once."""
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

    def heal(self) -> None:
        for i in range(len(self.namespaces)):
            self._nft(i, "flush table inet chaos")
        for i in sorted(self._shaped):
            run("ip", "netns", "exec", self.namespaces[i], "tc", "qdisc", "del", "dev",
                "eth0", "root", check=False)
        self._shaped.clear()
