"""Refuse any connection outside loopback: imported by the test session and by every subprocess it starts.

The test suite puts this folder on PYTHONPATH, so Python runs it at start-up (as ``sitecustomize``)
in CLI subprocesses too. A test that tries to reach the internet fails loudly instead of leaking.
"""

from __future__ import annotations

import ipaddress
import socket

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkBlocked(RuntimeError):
    """A test tried to reach an address other than loopback."""


def is_allowed(address: object) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX socket paths are local by definition
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0]).split("%")[0]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install() -> None:
    if getattr(socket.socket.connect, "_kernel_app_guard", False):
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_allowed(address):
            raise NetworkBlocked(f"tests may only connect to loopback, not {address!r}")
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_allowed(address):
            raise NetworkBlocked(f"tests may only connect to loopback, not {address!r}")
        return original_connect_ex(self, address)

    connect._kernel_app_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


install()
