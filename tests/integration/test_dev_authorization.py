"""`odradek dev --authorization` on a data directory made without authorization (issue 11,
item 11), with real processes: the admin of the password file logs in and sees the data of
the earlier run, even when that run left a user `admin` with another password."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.brokers import free_port, terminate
from tests.cli import ODRADEK, clean_env, odradek


@contextmanager
def dev(data_dir: Path, port: int, *flags: str) -> Iterator[str]:
    """`odradek dev` until its banner is out (every broker registered, the admin's password
    set); yields the banner."""
    proc = subprocess.Popen([*ODRADEK, "dev", "--brokers", "1", "--port", str(port),
                             "--metrics-port", "0", "--kafka-port", "0",
                             "--data-dir", str(data_dir), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env())
    try:
        assert proc.stdout is not None
        banner = ""
        end = "ODRADEK_PASSWORD_FILE" if "--authorization" in flags else "Press Ctrl-C"
        while end not in banner:  # bounded: the process prints it or ends
            line = proc.stdout.readline()
            assert line, f"odradek dev exited:\n{banner}"
            banner += line
        yield banner
    finally:
        assert terminate(proc) == 0


def test_authorization_on_a_directory_made_without_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    port = free_port()
    boot = f"127.0.0.1:{port}"
    with dev(data_dir, port):
        made = odradek("topic", "create", "kept", "-b", boot)
        assert made.returncode == 0, made.stderr
        # Anyone could make users then: one took the name the dev admin has.
        user = odradek("user", "create", "admin", "-b", boot,
                       env={"ODRADEK_NEW_USER_PASSWORD": "someone-elses"})
        assert user.returncode == 0, user.stderr

    with dev(data_dir, port, "--authorization") as banner:
        assert "warning" not in banner
        password_file = data_dir / "admin.password"
        login = {"ODRADEK_USERNAME": "admin", "ODRADEK_PASSWORD_FILE": str(password_file)}
        listed = odradek("topic", "list", "-b", boot, env=login)
        assert listed.returncode == 0, listed.stderr
        assert "kept" in listed.stdout
        (tmp_path / "old").write_text("someone-elses\n")
        old = odradek("topic", "list", "-b", boot, env={
            "ODRADEK_USERNAME": "admin", "ODRADEK_PASSWORD_FILE": str(tmp_path / "old")})
        assert old.returncode != 0
        assert "authentication failed" in old.stderr.lower()
        anonymous = odradek("topic", "list", "-b", boot)
        assert anonymous.returncode != 0

    # And the next run (nothing left to fix) is ready just as well.
    with dev(data_dir, port, "--authorization"):
        listed = odradek("topic", "list", "-b", boot, env=login)
        assert listed.returncode == 0, listed.stderr
