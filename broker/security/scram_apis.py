"""DescribeUserScramCredentials (key 50), answered from this node's metadata image (Kafka's
``ScramImage.describe``): every user with credentials when ``users`` is null or empty, else
the users asked for; an unknown user is RESOURCE_NOT_FOUND, a user asked twice
DUPLICATE_RESOURCE. Only mechanisms and iterations are told, never salts or keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_user_scram_credentials
from kraft.image import MetadataImage

__all__ = ["describe_scram_handler"]


def describe_scram_handler(image: Callable[[], MetadataImage]) -> Any:
    R = describe_user_scram_credentials.RESPONSE

    def describe(ctx: Any, header: Any, request: Any) -> Any:
        users = image().scram.users()

        def result(name: str) -> Any:
            creds = users.get(name)
            if creds is None:
                return R.DescribeUserScramCredentialsResult(
                    user=name, error_code=ErrorCode.RESOURCE_NOT_FOUND,
                    error_message=f"Attempt to describe a user credential that does not "
                                  f"exist: {name}")
            return R.DescribeUserScramCredentialsResult(
                user=name, error_code=0, credential_infos=[
                    R.CredentialInfo(mechanism=m, iterations=c.iterations)
                    for m, c in sorted(creds.items())])

        if not request.users:
            return R.cls(error_code=0, results=[result(u) for u in sorted(users)])
        names = [u.name for u in request.users]
        twice = sorted({n for n in names if names.count(n) > 1})
        results = []
        for name in dict.fromkeys(names):
            if name in twice:
                results.append(R.DescribeUserScramCredentialsResult(
                    user=name, error_code=ErrorCode.DUPLICATE_RESOURCE,
                    error_message="Cannot describe SCRAM credentials for the same user twice "
                                  "in a single request"))
            else:
                results.append(result(name))
        return R.cls(error_code=0, results=results)

    return describe
