"""The principal of a TLS client certificate, as Kafka's ``DefaultKafkaPrincipalBuilder``
builds it: the subject's distinguished name in RFC 2253 form (Java's
``X500Principal.getName()``: the RDNs in reverse order of the certificate's sequence, the
keywords CN, C, L, ST, O, OU, STREET, DC, UID, any other attribute as ``OID=#hex``), then
``ssl.principal.mapping.rules`` (Kafka's ``SslPrincipalMapper``: ``RULE:pattern/replacement/``
with an optional ``L`` or ``U``, and ``DEFAULT``; the first rule whose pattern matches the whole
name wins; no rule matching fails the authentication). Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NoMatchingRuleError", "PrincipalMapper", "rfc2253_name"]

# Python's ssl attribute names -> Java's RFC 2253 keywords; others become OIDs.
_KEYWORDS = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
_OIDS = {
    "emailAddress": "1.2.840.113549.1.9.1", "serialNumber": "2.5.4.5", "surname": "2.5.4.4",
    "givenName": "2.5.4.42", "title": "2.5.4.12", "name": "2.5.4.41",
}
# DER string tag of the value an OID attribute is printed with (IA5String for e-mail).
_OID_TAGS = {"1.2.840.113549.1.9.1": 0x16, "2.5.4.5": 0x13}


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _der_hex(tag: int, value: str) -> str:
    data = value.encode("utf-8")
    n = len(data)
    length = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8,
                                                                                n & 0xFF])
    return "#" + (bytes([tag]) + length + data).hex()


def rfc2253_name(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """The RFC 2253 name of ``ssl.SSLObject.getpeercert()["subject"]``."""
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for name, value in rdn:
            keyword = _KEYWORDS.get(name)
            if keyword is not None:
                parts.append(f"{keyword}={_escape(value)}")
            else:
                oid = _OIDS.get(name, name)
                parts.append(f"{oid}={_der_hex(_OID_TAGS.get(oid, 0x0C), value)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


class NoMatchingRuleError(ValueError):
    """No ``ssl.principal.mapping.rules`` rule matched the certificate's name."""


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        result = self.pattern.sub(self.replacement, name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


# Kafka's SslPrincipalMapper.RULE_SPLITTER (escaped slashes allowed inside a rule).
_RULE_SPLITTER = re.compile(
    r"\s*(DEFAULT|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?))\s*(?:[,\n]\s*|$)")


def _java_replacement(text: str) -> str:
    """A Java replacement string ($1, \\$) as a Python one (\\g<1>)."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\\\\" if nxt == "\\" else nxt)
            i += 2
        elif ch == "$" and i + 1 < len(text) and text[i + 1].isdigit():
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            out.append(f"\\g<{text[i + 1:j]}>")
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class PrincipalMapper:
    """``ssl.principal.mapping.rules`` parsed; ``name(dn)`` maps a certificate's name."""

    def __init__(self, rules: str | None) -> None:
        self.rules: list[_Rule] = []
        text = (rules or "DEFAULT").strip() or "DEFAULT"
        pos = 0
        while pos < len(text):
            m = _RULE_SPLITTER.match(text, pos)
            if m is None or m.end() == pos:
                break
            pos = m.end()
            if m.group(5) is not None and m.group(5) != "":
                raise ValueError(f"Invalid rule: {m.group(5)}")
            if m.group(1) == "DEFAULT":
                self.rules.append(_Rule(None))
            elif m.group(1).startswith("RULE:"):
                pattern = m.group(2).replace("\\/", "/")
                replacement = m.group(3).replace("\\/", "/")
                try:
                    compiled = re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"Invalid rule pattern {pattern!r}: {e}") from e
                self.rules.append(_Rule(compiled, _java_replacement(replacement), m.group(4)))

    def name(self, distinguished_name: str) -> str:
        for rule in self.rules:
            result = rule.apply(distinguished_name)
            if result is not None:
                return result
        raise NoMatchingRuleError(f"No rules apply to {distinguished_name}, rules {self.rules}")


def peer_dn(ssl_object: Any) -> str | None:
    """The RFC 2253 subject of the peer's verified certificate, or None without one."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    return rfc2253_name(cert.get("subject", ()))
