"""Nodes in network namespaces, so a test can cut links between them (root and iproute2 only).

Why namespaces: iptables/nft are not available, and a per-link TCP proxy cannot cover
broker-to-broker links (every broker dials the advertised listener from the metadata image, the
same address for everybody). With one namespace per node, linked by veth pairs to a bridge in the
root namespace, each node has its own IP (10.<net>.0.<id>) and a cut link is an
``ip route add blackhole <peer>/32`` route inside a namespace: packets to a blackholed
destination are dropped before they leave, so both directions of every TCP connection between
the two nodes stop (replies are dropped too). Clients run in the root namespace; a client-node
cut is a blackhole route in the root namespace, which does not touch bridged node-to-node
traffic (the bridge forwards at layer 2).

Used by the fault suite (``jepsen-style/cluster.py``) and the test cluster offered to users
(``tools/testing.py``).
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
from collections.abc import Iterable

__all__ = ["NamespaceNetwork", "NetnsError", "netns_available"]

_TAGS = itertools.count()


class NetnsError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def netns_available() -> bool:
    """True if we may create network namespaces (root and iproute2)."""
    if os.geteuid() != 0:
        return False
    name = f"nschk{os.getpid() % 100000}"
    try:
        if ip("netns", "add", name, check=False).returncode != 0:
            return False
    except FileNotFoundError:  # no iproute2
        return False
    ip("netns", "del", name, check=False)
    return True


class NamespaceNetwork:
    """One namespace per node id, on a bridge: ``setup()``, ``block``/``partition``/``heal``,
    ``teardown()``. ``prefix`` names the interfaces (at most 15 characters with the suffixes),
    so it must be unique among the networks alive on the machine."""

    def __init__(self, node_ids: Iterable[int], *, prefix: str | None = None,
                 rnd: random.Random | None = None) -> None:
        self.node_ids = list(node_ids)
        # Unique per network of this process (never drawn from a seed: networks of one process
        # with the same seed must not share interface names, whatever one's teardown left).
        tag = f"{os.getpid() % 1000:03d}{next(_TAGS) % 100:02d}"
        self.prefix = prefix or f"ns{tag}"
        self.net = self._free_net(rnd or random.Random())
        self.bridge = f"{self.prefix}br"
        self.gateway = f"10.{self.net}.0.254"
        self.blackholes: set[tuple[str, str]] = set()  # (netns or "root", destination ip)
        self.up = False

    def ip(self, node_id: int) -> str:
        return f"10.{self.net}.0.{node_id}"

    def netns(self, node_id: int) -> str:
        return f"{self.prefix}n{node_id}"

    def command(self, node_id: int, argv: list[str]) -> list[str]:
        """``argv`` run inside the node's namespace (``ip netns exec`` execs it: the pid is the
        command's own)."""
        return ["ip", "netns", "exec", self.netns(node_id), *argv]

    @staticmethod
    def _free_net(rnd: random.Random) -> int:
        used = ip("-4", "addr").stdout
        for _ in range(200):
            net = rnd.randrange(100, 250)
            if f"10.{net}.0." not in used:
                return net
        raise NetnsError("no free 10.x.0.0/24 network")

    def setup(self) -> None:
        self.up = True
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in self.node_ids:
            host_if, ns_if, ns = f"{self.prefix}h{i}", f"{self.prefix}v{i}", self.netns(i)
            ip("netns", "add", ns)
            ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            ip("link", "set", ns_if, "netns", ns)
            ip("link", "set", host_if, "master", self.bridge)
            ip("link", "set", host_if, "up")
            ip("-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", ns_if)
            ip("-n", ns, "link", "set", ns_if, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def teardown(self) -> None:
        for i in self.node_ids:
            ip("netns", "del", self.netns(i), check=False)
            # Gone with its namespace, unless a process still holds that namespace.
            ip("link", "del", f"{self.prefix}h{i}", check=False)
        for dest in {d for ns, d in self.blackholes if ns == "root"}:
            ip("route", "del", "blackhole", f"{dest}/32", check=False)
        self.blackholes.clear()
        ip("link", "del", self.bridge, check=False)
        self.up = False

    def block(self, src: int | None, dst: int) -> None:
        """Drop traffic from ``src`` (a node id, or None for the clients) to node ``dst``."""
        where = "root" if src is None else self.netns(src)
        dest = self.ip(dst)
        if (where, dest) in self.blackholes:
            return
        args = ["route", "add", "blackhole", f"{dest}/32"]
        ip(*args) if where == "root" else ip("-n", where, *args)
        self.blackholes.add((where, dest))

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Nodes in different groups cannot talk (both directions). Nodes in no group are cut
        from every other node."""
        member: dict[int, int] = {}
        for gi, g in enumerate(groups):
            for i in g:
                member[i] = gi
        for a in self.node_ids:
            for b in self.node_ids:
                if a != b and (a not in member or b not in member or member[a] != member[b]):
                    self.block(a, b)

    def block_links(self, links: Iterable[tuple[int, int]]) -> None:
        """Cut each (a, b) link in both directions."""
        for a, b in links:
            self.block(a, b)
            self.block(b, a)

    def heal(self) -> None:
        for where, dest in sorted(self.blackholes):
            args = ["route", "del", "blackhole", f"{dest}/32"]
            if where == "root":
                ip(*args, check=False)
            else:
                ip("-n", where, *args, check=False)
        self.blackholes.clear()
