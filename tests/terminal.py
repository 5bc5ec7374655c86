"""Running a command under a real pseudo-terminal and reading what it drew."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_terminal(argv: list[str], env: dict | None = None, columns: int = 160, timeout: float = 300
                    ) -> tuple[int, str]:
    """Run `argv` with stdin, stdout and stderr on a new pseudo-terminal of `columns`
    columns; return its exit status and every byte it wrote, as text."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    os.close(slave)
    screen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the terminal closed: the process has ended
                break
            if not chunk:
                break
            screen += chunk
        else:
            process.kill()
            raise TimeoutError(f"{argv[:3]} still running after {timeout} s")
        return process.wait(timeout=60), screen.decode("utf-8", "replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
