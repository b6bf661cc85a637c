"""The broker's JVM as an operating-system process: spawn, recognise, stop, read its log."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 64 * 1024


def spawn(
    command: list[str], cwd: Path, log_path: Path, env: Mapping[str, str], die_with_parent: bool
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new session and process group, output to ``log_path``.

    With ``die_with_parent`` the kernel kills it when the calling thread's process dies,
    even by SIGKILL, so tests and demos leave no JVM behind. A daemon must not use it.
    """
    preexec = _die_with(os.getpid()) if die_with_parent else None
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - the command is built from our own config
            command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec,
        )  # fmt: skip


def _die_with(parent_pid: int) -> Callable[[], None]:
    # Load libc before fork: the child should only make the call, not load libraries.
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def set_parent_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took hold
            os.kill(os.getpid(), signal.SIGKILL)

    return set_parent_death_signal


def is_broker(pid: int, properties: Path) -> bool:
    """True if ``pid`` is a live ``kafka.Kafka`` JVM started with this home's properties file."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "kafka.Kafka" in command and str(properties) in command


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or None when there is no readable record."""
    try:
        return int(pid_file.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None


def is_gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def terminate(pid: int, timeout: float, child: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM the broker's process group, wait up to ``timeout``, then SIGKILL it.

    Returns True if the broker shut down cleanly, False if it had to be killed.
    """
    _signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout, child):
        return True
    _signal_group(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0, child)
    return False


def _signal_group(pid: int, signum: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # we made it a group leader; its group holds nothing else of ours
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float, child: subprocess.Popen[bytes] | None) -> bool:
    try:
        if child is not None:
            child.wait(timeout)  # also reaps it
        else:
            psutil.Process(pid).wait(timeout)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def rotate_log(log_path: Path) -> None:
    """Keep the previous run's log as ``<name>.1`` so each run starts a fresh file."""
    if log_path.exists():
        log_path.replace(log_path.with_name(log_path.name + ".1"))


def tail(log_path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(max(0, log_path.stat().st_size - _TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {log_path})"
    return "\n".join(text.splitlines()[-lines:])
