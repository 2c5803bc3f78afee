"""The address-valued configuration keys, parsed as Kafka parses them: listeners and
advertised.listeners (``Endpoint``, ``parse_listeners``), listener.security.protocol.map,
controller.quorum.voters and controller.quorum.bootstrap.servers (``parse_voters``,
``parse_host_port``) and our admin.listeners. A bad value raises
:class:`~storage.errors.ConfigError` naming the key; ``broker.config.KafkaConfig`` calls these
and runs the cross-key checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kraft.config_defs import INT_MAX, INT_RE, SECURITY_PROTOCOLS
from storage.errors import ConfigError

__all__ = [
    "Endpoint",
    "parse_admin_listeners",
    "parse_host_port",
    "parse_listeners",
    "parse_security_map",
    "parse_voters",
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A listener: upper-cased ``name``, ``host`` (``""`` = all interfaces), ``port``."""

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name}://{host}:{self.port}"


_LISTENER_RE = re.compile(r"(.+)://\[?([0-9a-zA-Z\-%._:]*)\]?:([0-9]+)")
_HOST_PORT_RE = re.compile(r"\[?([0-9a-zA-Z\-%._:]+)\]?:([0-9]+)")


def parse_listeners(
    key: str,
    entries: Sequence[str],
    security_map: Mapping[str, str] | None,
    *,
    require_distinct_ports: bool,
) -> list[Endpoint]:
    """Kafka's ``listenerListToEndPoints``: parse ``NAME://host:port`` entries.

    ``security_map`` None skips the protocol lookup (used for ``admin.listeners``).
    """
    raw = ",".join(entries)
    endpoints: list[Endpoint] = []
    for entry in entries:
        m = _LISTENER_RE.fullmatch(entry)
        if m is None:
            raise ConfigError(key, raw, f"Unable to parse {entry!r} to a listener endpoint "
                              "(expected NAME://host:port)")
        name, host, port_text = m.group(1).upper(), m.group(2), m.group(3)
        port = int(port_text)
        if port > 65535:
            raise ConfigError(key, raw, f"Invalid port {port} in {entry!r}")
        protocol = "PLAINTEXT"
        if security_map is not None:
            if name not in security_map:
                raise ConfigError(
                    key, raw, f"No security protocol defined for listener {name} (add it to "
                    "listener.security.protocol.map)"
                )
            protocol = security_map[name]
        endpoints.append(Endpoint(name, host, port, protocol))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise ConfigError(key, raw, "Each listener must have a different name")
    if require_distinct_ports:
        by_port: dict[int, list[Endpoint]] = {}
        for e in endpoints:
            if e.port != 0:
                by_port.setdefault(e.port, []).append(e)
        for port, same in by_port.items():
            dual_stack = len(same) == 2 and _one_ipv4_one_ipv6(same[0].host, same[1].host)
            if len(same) > 1 and not dual_stack:
                raise ConfigError(
                    key, raw, f"Each listener must have a different port unless exactly one "
                    f"listener has an IPv4 address and the other IPv6 address (port {port})"
                )
    return endpoints


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).version
    except ValueError:
        return None


def _one_ipv4_one_ipv6(a: str, b: str) -> bool:
    return {_ip_version(a), _ip_version(b)} == {4, 6}


def parse_host_port(key: str, raw: str, entry: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` with a port in 1..65535."""
    m = _HOST_PORT_RE.fullmatch(entry.strip())
    if m is None:
        raise ConfigError(key, raw, f"Invalid host:port {entry!r}")
    host, port = m.group(1), int(m.group(2))
    if not 1 <= port <= 65535:
        raise ConfigError(key, raw, f"Invalid port {port} in {entry!r}")
    return host, port


def parse_voters(key: str, entries: Sequence[str]) -> dict[int, tuple[str, int]]:
    """Kafka's ``QuorumConfig.parseVoterConnections``: ``id@host:port`` entries."""
    raw = ",".join(entries)
    voters: dict[int, tuple[str, int]] = {}
    for entry in entries:
        parts = entry.split("@")
        if len(parts) != 2:
            raise ConfigError(key, raw, "Each entry should be in the form `{id}@{host}:{port}`.")
        id_text, address = parts
        if not INT_RE.fullmatch(id_text.strip()):
            raise ConfigError(key, raw, f"Failed to parse voter ID as an integer from {id_text!r}")
        voter_id = int(id_text)
        if not 0 <= voter_id <= INT_MAX:
            raise ConfigError(key, raw, f"Invalid voter ID {voter_id}: must be non-negative")
        host, port = parse_host_port(key, raw, address)
        if host == "0.0.0.0":
            raise ConfigError(key, raw, f"Host string ({host}) is not routeable")
        if voter_id in voters:
            raise ConfigError(key, raw, f"Voter ID {voter_id} appears more than once")
        voters[voter_id] = (host, port)
    return voters


def parse_security_map(key: str, entries: Sequence[str]) -> dict[str, str]:
    raw = ",".join(entries)
    result: dict[str, str] = {}
    for entry in entries:
        name, sep, protocol = entry.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not name or not protocol:
            raise ConfigError(key, raw, f"Map entry {entry!r} is improperly formatted; "
                              "expected LISTENER_NAME:SECURITY_PROTOCOL")
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(key, raw, f"Invalid security protocol {protocol!r} for listener "
                              f"{name}; expected one of {', '.join(SECURITY_PROTOCOLS)}")
        if name in result:
            raise ConfigError(key, raw, f"Listener {name} appears more than once")
        result[name] = protocol
    return result


def parse_admin_listeners(key: str, entries: Sequence[str]) -> list[Endpoint]:
    """``http://host:port`` and ``https://host:port`` entries (one of each at most, as Kafka's
    listener names are unique); an https endpoint's security protocol is SSL (its TLS keys:
    ``listener.name.admin.ssl.*``, else ``ssl.*``)."""
    raw = ",".join(entries)
    endpoints = parse_listeners(key, entries, None, require_distinct_ports=True)
    for e in endpoints:
        if e.name not in ("HTTP", "HTTPS"):
            raise ConfigError(key, raw, f"Unsupported admin listener scheme {e.name.lower()!r} "
                              "(only http:// and https:// are supported)")
    return [Endpoint(e.name.lower(), e.host, e.port,
                     "SSL" if e.name == "HTTPS" else "PLAINTEXT") for e in endpoints]
