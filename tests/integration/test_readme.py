"""The README as a newcomer uses it: every `sh` block run by bash and every `python` block
saved to a file and run, in order, each section against the `odradek dev` cluster it
starts from (`make run`'s, with --tls, with --authorization). Only the ports change, to
free ones; each section runs in a temporary directory, where .dev-data is."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import free_port, terminate, wait_until
from tests.cli import ODRADEK, clean_env

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
README_PORTS = range(9092, 9096)  # make run's three brokers and the README's fourth
# What each section's blocks run against: `odradek dev` with these flags.
SECTIONS = {"Try it": ["--brokers", "3"], "TLS": ["--tls", "--brokers", "3"],
            "Users and ACLs": ["--authorization"]}


def sections() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^## ", README.read_text(), flags=re.MULTILINE)[1:]:
        title = part.splitlines()[0].strip()
        runnable = [(m[1], m[2]) for m in BLOCK.finditer(part)]
        if runnable:
            found[title] = runnable
    return found


def consecutive_free_ports(count: int) -> int:
    """A first port of `count` free ones in a row (odradek dev takes consecutive ports)."""
    for _ in range(100):
        base = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free ports")


@contextlib.contextmanager
def dev_cluster(flags: list[str], base: int, cwd: Path) -> Iterator[None]:
    """`odradek dev` as `make run` starts it, in cwd (its data in cwd/.dev-data)."""
    log = cwd / "dev.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*ODRADEK, "dev", *flags, "--port", str(base),
                                 "--metrics-port", "0"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, env=clean_env())
    try:
        wait_until(lambda: "Press Ctrl-C to stop" in log.read_text() or proc.poll() is not None,
                   120, "odradek dev to start")
        assert proc.poll() is None, log.read_text()
        yield
    finally:
        terminate(proc, 30)


def localized(text: str, base: int) -> str:
    for readme_port, port in zip(README_PORTS, range(base, base + 4), strict=True):
        text = text.replace(f"127.0.0.1:{readme_port}", f"127.0.0.1:{port}")
        text = text.replace(f"--port {readme_port}", f"--port {port}")
    return text


def run_block(kind: str, code: str, cwd: Path, index: int,
              env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if kind == "python":
        script = cwd / f"readme_{index}.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    out_path, err_path = cwd / f"readme_{index}.out", cwd / f"readme_{index}.err"
    # Files, not pipes: a broker the block starts in the background keeps them open. Its
    # own process group: that broker is stopped with it, whatever happens to the block.
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            proc.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return subprocess.CompletedProcess(cmd, proc.returncode, out_path.read_text(),
                                       err_path.read_text())


def exported(code: str) -> dict[str, str]:
    """What an sh block exports: the next blocks run in the same (imagined) shell."""
    found: dict[str, str] = {}
    for line in re.findall(r"^export (.+)$", code, re.MULTILINE):
        found.update(re.findall(r"(\w+)=(\S+)", line))
    return found


def run_section(title: str, blocks: list[tuple[str, str]], cwd: Path) -> list[str]:
    cwd.mkdir()
    base = consecutive_free_ports(4)
    env = clean_env({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                     "ODRADEK_METRICS_PORT": str(free_port())})
    outputs = []
    with dev_cluster(SECTIONS[title], base, cwd):
        for index, (kind, code) in enumerate(blocks):
            code = localized(code, base)
            result = run_block(kind, code, cwd, index, env)
            assert result.returncode == 0, f"README {title!r} block {index}:\n{code}\n{result}"
            if kind == "sh":
                env.update(exported(code))
            outputs.append(result.stdout)
    return outputs


@pytest.mark.timeout(900)
def test_readme_blocks_run_as_written(tmp_path: Path) -> None:
    found = sections()
    assert set(found) == set(SECTIONS), "a README section with blocks needs its cluster here"
    assert [kind for kind, _ in found["Try it"]].count("python") >= 2
    try_it = run_section("Try it", found["Try it"], tmp_path / "try-it")
    lines = try_it[0].splitlines()
    assert lines[0] == "created topic orders with 3 partition(s)"
    assert "source=readme" in try_it[0] and "Healthy: yes" in lines
    assert "would move" in try_it[1] and "stored at" in try_it[2]
    tls = run_section("TLS", found["TLS"], tmp_path / "tls")
    assert tls[0].splitlines()[0] == "created topic payments with 1 partition(s)"
    assert "payments" in tls[0].splitlines()[-1]
    users = run_section("Users and ACLs", found["Users and ACLs"], tmp_path / "users")
    # alice sees the topic her ACL covers, and only that one.
    assert users[0].splitlines()[-2:] == ["NAME       PARTITIONS  REPLICATION",
                                          "orders-eu           1            1"]
