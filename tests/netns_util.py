"""Hosts as Linux network namespaces on one virtual switch, for multi-host tests and benchmarks.

Each host is a network namespace with its loopback up and one veth link (`eth0`, an address of
a private test range) to a bridge that lives in a namespace of its own (the switch), so nothing
of the test network -- addresses, routes, the bridge -- exists in the machine's own namespace.
The switch side of a host's link is its cable: `cut(host)` sets it down, `restore(host)` up.

Processes enter a host by inheritance: `with net.inside(host):` moves the calling thread into the
host's namespace (setns(2)), and a process started there (subprocess.Popen forks from that thread)
or an rclpy context created there (its DDS sockets and threads) stays on that host. This is what
`ip netns exec HOST cmd` does for a command, without a shell wrapper around every node process.
Python 3.11 has no os.setns, hence ctypes.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2's `ip`; `unavailable()` says why not.
Namespace names carry the pid of the process that made them; `sweep_stale()` removes those of
processes that no longer exist (a run killed before its finalizers ran).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
PREFIX = "drlnet"
_libc = ctypes.CDLL(None, use_errno=True)


def _ip_tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _ip_tool("ip", *args, check=check)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def unavailable() -> str:
    """Why network namespaces cannot be made here ("" when they can): tried for real, once."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); the tests run as root in CI"
    name = f"{PREFIX}-{os.getpid()}-probe"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    try:
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(f"/run/netns/{name}")
            if _libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(here)
    except OSError as exc:
        return f"cannot enter a network namespace: {exc}"
    finally:
        _ip("netns", "del", name, check=False)
    return ""


def sweep_stale() -> None:
    """Remove namespaces of earlier runs whose process is gone."""
    listing = _ip("netns", "list", check=False).stdout.split()
    for name in listing:
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit() and not os.path.exists(f"/proc/{parts[1]}"):
            _ip("netns", "del", name, check=False)


class Network:
    """`hosts` on one switch, addresses 10.213.`subnet`.(2 + i)/24 in order. Close it (finally)."""

    def __init__(self, hosts: list[str], tag: str = "t", subnet: int = 1) -> None:
        self.tag = f"{PREFIX}-{os.getpid()}-{tag}"
        self.switch = f"{self.tag}-sw"
        self.hosts = {h: f"{self.tag}-{h}" for h in hosts}
        self.addresses = {h: f"10.213.{subnet}.{2 + i}" for i, h in enumerate(hosts)}
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.switch, *self.hosts.values()):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")  # DDS also talks to itself
        # The bridge floods multicast (no IGMP snooping): SPDP discovery reaches every host.
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host, ns in self.hosts.items():
            port = self.port(host)
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", self.switch)
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            # FastDDS sends SPDP to 239.255.0.1 through every interface; a route keeps it on eth0.
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

    @staticmethod
    def port(host: str) -> str:
        return f"p-{host}"[:15]

    def cut(self, host: str) -> None:
        """Pull the host's cable: its switch port goes down (the host sees no carrier)."""
        _ip("-n", self.switch, "link", "set", self.port(host), "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self.port(host), "up")

    def no_multicast(self) -> None:
        """Make the switch drop multicast (as many office and cloud networks do): DDS's default
        discovery then finds nobody, unicast still flows."""
        for host in self.hosts:
            _ip_tool("bridge", "-n", self.switch, "link", "set", "dev", self.port(host), "mcast_flood", "off")

    def multicast_reaches(self, src: str, dst: str, timeout: float = 1.0) -> bool:
        """Whether a datagram to DDS's discovery group (239.255.0.1) sent from `src` arrives at `dst`."""
        group, port = "239.255.0.1", 7399
        with self.inside(dst):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with self.inside(src):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx, tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rx.bind(("", port))
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                          socket.inet_aton(group) + socket.inet_aton(self.addresses[dst]))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.addresses[src]))
            tx.sendto(b"drl_control", (group, port))
            rx.settimeout(timeout)
            try:
                return rx.recv(64) == b"drl_control"
            except TimeoutError:
                return False

    def port_bytes(self, host: str) -> int:
        """Bytes through the host's switch port so far, both directions (all its traffic)."""
        link = json.loads(_ip("-n", self.switch, "-j", "-s", "link", "show", "dev", self.port(host)).stdout)[0]
        return int(link["stats64"]["rx"]["bytes"]) + int(link["stats64"]["tx"]["bytes"])

    @contextlib.contextmanager
    def inside(self, host: str) -> Iterator[None]:
        """Run the calling thread in `host`'s namespace for the block (see the module doc)."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(f"/run/netns/{self.hosts[host]}")
            try:
                yield
            finally:
                if _libc.setns(here, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "cannot return to the original network namespace")
        finally:
            os.close(here)

    def close(self) -> None:
        """Delete every namespace made (their veths and the bridge go with them)."""
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        self._made.clear()
