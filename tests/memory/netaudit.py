"""Prove that code opens no network connection outside this machine: a `socket.connect` audit hook.

    with no_remote_connections() as seen:
        await something()
    assert seen.remote == []

The hook sees every connection made through Python's socket module (HTTP clients, urllib, PostHog,
DNS-free connects). It *refuses* a non-loopback connection (raises before it happens) and records it,
so a regression fails the test instead of reaching the internet. libpq (psycopg) and asyncpg connect
from C / their own sockets to the database, which here is a Unix socket or loopback anyway.
Audit hooks cannot be removed; the hook is installed once and only acts inside the context.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


class RemoteConnectionRefused(OSError):
    """Raised by the audit hook instead of connecting outside loopback."""


@dataclass
class Connections:
    local: list[Any] = field(default_factory=list)
    remote: list[Any] = field(default_factory=list)


_active: list[Connections] = []
_installed = False


def is_local(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        try:
            return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
        except ValueError:
            return False  # a host name: resolving it would already be a network call
    return False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _active:
        return
    sock, address = args
    record = (socket.AddressFamily(sock.family).name, address)
    if is_local(sock.family, address):
        _active[-1].local.append(record)
        return
    _active[-1].remote.append(record)
    raise RemoteConnectionRefused(f"test refused a connection to {address!r}")


@contextmanager
def no_remote_connections() -> Iterator[Connections]:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    seen = Connections()
    _active.append(seen)
    try:
        yield seen
    finally:
        _active.remove(seen)
