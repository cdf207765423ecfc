"""The command line takes flags as written: no abbreviations (argparse took `--key k` for
`--key-separator k` and stored the wrong key), an unknown flag is reported by its
subcommand, and a port in use is one clear line, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from odradek.cli.main import main


@pytest.mark.parametrize(("argv", "prefix", "wrong"), [
    (["produce", "t", "--head", "a=1"], "odradek produce", "--head a=1"),
    (["produce", "t", "--key-sep", ":"], "odradek produce", "--key-sep :"),
    (["topic", "create", "x", "--partition", "3"], "odradek topic create", "--partition 3"),
    (["consume", "t", "--from-beg"], "odradek consume", "--from-beg"),
])
def test_no_abbreviations_and_the_subcommand_reports(
        argv: list[str], prefix: str, wrong: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: {prefix}" in err
    assert f"{prefix}: error: unrecognized arguments: {wrong}" in err


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "odradek.cli.main", "broker", "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", "0", "--data-dir", str(tmp_path / "d")],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr


def test_version_and_kafkas_bootstrap_server_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("odradek ")
    from odradek.cli.main import build_parser

    args = build_parser().parse_args(["topic", "list", "--bootstrap-server", "h:1"])
    assert args.bootstrap == "h:1"


def test_json_output_keeps_zeros_and_numbers() -> None:
    """`--json` is for scripts: partition 0 is printed, int64 values are numbers."""
    import json

    from odradek.cli.common import message_json
    from odradek.client.types import PartitionInfo, PartitionState, TopicDescription

    d = TopicDescription("t", "", False, 1, (PartitionState(
        PartitionInfo(0, 1, (1, 2), (1,), 0), 0, 12, 0, 1),), ())
    out = json.loads(message_json(d))
    assert out["partitions"][0]["info"]["partition"] == 0
    assert out["partitions"][0]["high_watermark"] == 12  # a number, not "12"
    assert out["partitions"][0]["log_start_offset"] == 0
