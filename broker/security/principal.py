"""Kafka principals (``KafkaPrincipal`` in Kafka): the identity a connection's requests are
authorized and throttled as. A connection starts as ``User:ANONYMOUS`` (PLAINTEXT and SSL
without a client certificate); TLS client certificates and SASL replace it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "USER_TYPE", "KafkaPrincipal"]

USER_TYPE = "User"


@dataclass(frozen=True, slots=True)
class KafkaPrincipal:
    """``principal_type:name``, e.g. ``User:alice`` (Kafka's string form, used in ACLs and
    ``super.users``)."""

    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """``"User:alice"`` -> ``KafkaPrincipal("User", "alice")``; ValueError without a type."""
        principal_type, sep, name = text.partition(":")
        if not sep or not principal_type:
            raise ValueError(f"principal {text!r} is not of the form Type:name")
        return cls(principal_type, name)


ANONYMOUS = KafkaPrincipal(USER_TYPE, "ANONYMOUS")
