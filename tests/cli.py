"""Running the `odradek` command as a user would, for tests against real brokers."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
from collections.abc import Mapping

from tests.brokers import wait_until

ODRADEK = [sys.executable, "-m", "odradek.cli.main"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without the ODRADEK_* settings of whoever runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def odradek(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ODRADEK, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False, env=clean_env(env))


def _take_terminal() -> None:
    # The child is a session leader (start_new_session); its stdin, the pty, becomes its
    # controlling terminal, which getpass opens as /dev/tty and ^C signals through.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # As on a user's terminal: a test run started in the background (`cmd &`, as CI may
    # be) inherits SIGINT ignored, and Python then never turns ^C into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class OnTerminal:
    """`odradek` with a pseudo-terminal for stdin, stdout and stderr: what it prints is
    read back from the terminal, and keys are typed into it."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([*ODRADEK, *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=clean_env(env), start_new_session=True,
                                     preexec_fn=_take_terminal)
        os.close(slave)
        self.output = b""

    def _read_some(self) -> bool:
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return True
        self.output += chunk
        return not chunk

    def wait_for(self, text: str, timeout: float = 30) -> None:
        os.set_blocking(self.master, False)

        def seen() -> bool:
            try:
                self._read_some()
            except BlockingIOError:
                pass  # nothing printed yet
            return text.encode() in self.output

        wait_until(seen, timeout, f"{text!r} on the terminal (got {self.output!r})")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self, timeout: float = 30) -> int:
        """Waits for the exit status, reading everything the command printed."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        os.set_blocking(self.master, True)
        while not self._read_some():
            pass  # read until the terminal is closed
        os.close(self.master)
        return code

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")
