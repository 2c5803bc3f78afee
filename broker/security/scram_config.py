"""The text forms of SCRAM credentials Kafka's tools take (KIP-554, KIP-900):
``kafka-storage format --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]'``
(also ``iterations=``, and ``salt=`` + ``saltedpassword=`` in base64 instead of a password) and
``kafka-configs --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'``. Pure."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from broker.security.scram import (
    MAX_ITERATIONS,
    MECHANISMS,
    MIN_ITERATIONS,
    credential_from_salted,
    make_credential,
    salted_password,
)
from kraft.scram_image import ScramCredentialData

__all__ = ["ScramSpec", "ScramSpecError", "parse_scram_spec", "split_scram_configs"]

_SPEC = re.compile(r"\s*(SCRAM-SHA-(?:256|512))\s*=\s*\[(.*)\]\s*", re.DOTALL)


class ScramSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ScramSpec:
    mechanism: int
    mechanism_name: str
    name: str | None
    credential: ScramCredentialData
    salted_password: bytes


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in re.finditer(r'\s*([a-zA-Z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)', text):
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        out[m.group(1).lower()] = value
    return out


def parse_scram_spec(text: str, *, default_iterations: int = MIN_ITERATIONS) -> ScramSpec:
    m = _SPEC.fullmatch(text)
    if m is None:
        raise ScramSpecError(f"{text!r} is not SCRAM-SHA-256=[...] or SCRAM-SHA-512=[...]")
    mechanism_name = m.group(1)
    mechanism = int(MECHANISMS[mechanism_name][0])
    opts = _options(m.group(2))
    iterations = int(opts.get("iterations", default_iterations))
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ScramSpecError(f"iterations {iterations} is outside {MIN_ITERATIONS}.."
                             f"{MAX_ITERATIONS}")
    name = opts.get("name")
    if "password" in opts:
        salt = base64.b64decode(opts["salt"]) if "salt" in opts else None
        cred = make_credential(mechanism, opts["password"], salt=salt, iterations=iterations)
        salted = salted_password(mechanism, opts["password"].encode(), cred.salt, iterations)
    elif "saltedpassword" in opts and "salt" in opts:
        salted = base64.b64decode(opts["saltedpassword"])
        cred = credential_from_salted(mechanism, salted, base64.b64decode(opts["salt"]),
                                      iterations)
    else:
        raise ScramSpecError(f"{text!r}: give password=, or salt= and saltedpassword=")
    return ScramSpec(mechanism, mechanism_name, name, cred, salted)


def split_scram_configs(text: str) -> list[str]:
    """``kafka-configs --add-config`` text split at the commas between entries (not the ones
    inside ``[...]``)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [p.strip() for p in out if p.strip()]
