"""What a newcomer meets in the first hour with `odradek`, through the real command against
real brokers: one clear line instead of a traceback, an error instead of silence (a group
consumer of a missing topic: tests/integration/test_group_client.py)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import BrokerProcess, free_port
from tests.cli import OnTerminal, odradek


@pytest.fixture
def taken_port() -> Iterator[int]:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield port


def test_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    line = (f"error: cannot listen on 127.0.0.1:{taken_port}: the port is in use, or the "
            "address is not one of this machine's (--host, --port)")
    broker = odradek("broker", "--port", str(taken_port), "--metrics-port", "0",
                     "--data-dir", str(tmp_path / "broker"), "--log-level", "warning")
    assert (broker.returncode, broker.stderr.splitlines()) == (1, [line])
    dev = odradek("dev", "--port", str(taken_port), "--metrics-port", "0",
                  "--data-dir", str(tmp_path / "dev"))
    assert (dev.returncode, dev.stderr.splitlines()) == (
        1, [line + " (another cluster on these ports? use --port)"])


def test_tls_cert_without_key_is_one_line(broker: BrokerProcess, tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not read: the key is missing")
    r = odradek("topic", "list", "--bootstrap", broker.address, "--tls-cert", str(cert))
    assert (r.returncode, r.stderr) == (
        1, "error: a client certificate needs its key, and a key its certificate "
           "(--tls-ca, --tls-cert, --tls-key)\n")


@pytest.mark.parametrize("key", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
def test_password_prompt_ends_on_first_ctrl_d_or_ctrl_c(broker: BrokerProcess,
                                                        key: bytes) -> None:
    term = OnTerminal("user", "create", "alice", "--bootstrap", broker.address)
    term.wait_for("password for alice: ")
    term.type(key)
    code = term.finish()
    if key == b"\x04":
        assert code == 1
        assert term.text.endswith("\nerror: no password given (end of input at the prompt)\n")
    else:
        assert code == 130
    assert "Traceback" not in term.text
    users = odradek("user", "list", "--bootstrap", broker.address)
    assert users.returncode == 0 and "alice" not in users.stdout


def test_anonymous_topic_list_with_authorization_is_denied(tmp_path: Path) -> None:
    secured = BrokerProcess(tmp_path / "secured", extra_args=["--authorization", "on"])
    try:
        secured.start()
        r = odradek("topic", "list", "--bootstrap", secured.address)
        assert (r.returncode, r.stdout, r.stderr) == (
            1, "", "error: User:ANONYMOUS may not describe any topic "
                   "(TOPIC_AUTHORIZATION_FAILED)\n")
        r = odradek("topic", "list", "--json", "--bootstrap", secured.address)
        assert r.returncode == 1 and r.stdout == ""
    finally:
        secured.stop()


def test_bench_consume_reads_exactly_the_records_asked_for(broker: BrokerProcess) -> None:
    boot = ["--bootstrap", broker.address]
    made = odradek("bench", "produce", "--topic", "b", "--records", "3000",
                   "--record-size", "10", *boot)
    assert made.returncode == 0, made.stderr
    # Through a pipe: no progress bar (carriage returns) in stderr.
    assert made.stderr == ""
    r = odradek("bench", "consume", "--topic", "b", "--records", "1234", "--json", *boot)
    assert (r.returncode, r.stderr) == (0, "")
    result = json.loads(r.stdout.splitlines()[-1])
    assert (result["records"], result["bytes"]) == (1234, 12340)
    # More than there are: all 3000, and the rate leaves out the idle polls after them.
    r = odradek("bench", "consume", "--topic", "b", "--records", "5000", "--json", *boot)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["records"] == 3000
    assert result["seconds"] < 5  # ten idle polls of a second each would be 10 s


def test_bench_progress_is_drawn_on_a_terminal(broker: BrokerProcess) -> None:
    term = OnTerminal("bench", "produce", "--topic", "p", "--records", "2000",
                      "--record-size", "10", "--bootstrap", broker.address)
    assert term.finish(timeout=60) == 0
    assert "\rproduce [" in term.output.decode()
    assert "2000/2000" in term.text



def test_bash_completion_knows_subcommands_and_flags(tmp_path: Path) -> None:
    script = odradek("completion", "bash")
    assert script.returncode == 0 and script.stderr == ""
    (tmp_path / "odradek.bash").write_text(script.stdout)
    probe = "\n".join(["source odradek.bash",
                       *(f'COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); '
                         '_odradek; echo "${COMPREPLY[*]}"'
                         for line in ("odradek topic cr", "odradek consume orders --form",
                                      "odradek gr", "odradek group delete-offsets g --to",
                                      "odradek partition reassign t 0 --st"))])
    done = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["create", "--format --format-string", "group",
                                        "--topic", "--status"]
    zsh = odradek("completion", "zsh").stdout
    assert zsh.splitlines()[1] == "autoload -U +X bashcompinit && bashcompinit"
    assert zsh.endswith("complete -o default -F _odradek odradek\n")
