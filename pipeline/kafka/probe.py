"""Ask loopback ports and the broker itself whether they are free, open or ready."""

from __future__ import annotations

import asyncio
import random
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for tests to pick ports)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports, held together while choosing so none repeats.

    Chosen below the kernel's ephemeral range when it leaves room: a port from that range can be
    taken by any outgoing connection between choosing it and binding it (CI saw a broker refuse a
    port so taken), a port below it only by another listener.
    """
    sockets: list[socket.socket] = []
    try:
        low, high = _unclaimed_range()
        candidates = random.sample(range(low, high), min(high - low, 64 * count)) if high > low else []
        for port in candidates:
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((HOST, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        while len(sockets) < count:  # no room below the ephemeral range: let the kernel pick
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _unclaimed_range() -> tuple[int, int]:
    """Ports from 10000 up to the start of the ephemeral range (empty if it is unknown or low)."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return 10_000, ephemeral_low


def port_in_use(port: int) -> bool:
    """True if something already listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the JVM sets, so a socket lingering in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def accepts_connections(port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection to 127.0.0.1:``port`` succeeds."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def kafka_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a metadata request lists at least one live broker, so topics can be created.

    Runs on a private event loop in a worker thread, so callers may or may not have a loop running.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-probe") as pool:
        return pool.submit(asyncio.run, _describe_has_brokers(bootstrap, timeout)).result()


async def _describe_has_brokers(bootstrap: str, timeout: float) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
    except (KafkaError, OSError, asyncio.TimeoutError):
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))


def port_owner(port: int) -> str:
    """Best-effort name of the process listening on ``port``, e.g. " (java, pid 42)"; may be empty."""
    import psutil  # only needed to explain a conflict

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" ({psutil.Process(conn.pid).name()}, pid {conn.pid})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return ""
