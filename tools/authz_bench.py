"""What authorization costs a Produce request on the broker: ``python -m tools.authz_bench``.

Times the listener's route-table entry for Produce with a stand-in handler (so only the
dispatch and the check are measured): without an authorizer (the node's table then holds the
plain handler: nothing runs in between), and with one over 0, 100 and 10,000 ACLs (literal and
prefixed, for other principals and topics), for requests naming 1 and 10 topics.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import produce
from broker.security.api_authz import AuthzChecker, secure_handlers
from broker.security.authorizer import AuthorizerConfig, AuthorizerHolder
from broker.security.principal import ANONYMOUS
from kraft.acls import AclOperation, AclPermissionType, PatternType, ResourceType, StandardAcl
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage


def _image(n_acls: int) -> MetadataImage:
    d = MetadataDelta(MetadataImage())
    for i in range(n_acls):
        pattern = PatternType.PREFIXED if i % 2 else PatternType.LITERAL
        acl = StandardAcl(ResourceType.TOPIC, f"topic-{i}", pattern, f"User:u{i % 50}", "*",
                          AclOperation.WRITE, AclPermissionType.ALLOW)
        d.replay(18, acl.to_record(uuid.UUID(int=i + 1)))
    d.replay(18, StandardAcl(ResourceType.TOPIC, "bench-", PatternType.PREFIXED,
                             str(ANONYMOUS), "*", AclOperation.WRITE,
                             AclPermissionType.ALLOW).to_record(uuid.UUID(int=0)))
    return d.apply()


def _request(topics: int) -> Any:
    R = produce.REQUEST
    return R.cls(acks=1, timeout_ms=1000, topic_data=[R.TopicProduceData(
        name=f"bench-{t}", partition_data=[R.PartitionProduceData(index=0, records=b"")])
        for t in range(topics)])


def _time(handler: Any, request: Any, seconds: float) -> float:
    ctx = SimpleNamespace(principal=ANONYMOUS, peer=("127.0.0.1", 5000),
                          listener_name="PLAINTEXT")
    header = SimpleNamespace(api_key=0, api_version=9)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            handler(ctx, header, request)
        n += 1000
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / n * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = ap.parse_args(argv)
    response = produce.RESPONSE.cls(responses=[])

    def inner(ctx: Any, header: Any, request: Any) -> Any:
        return response

    print(f"{'authorizer':<28}{'1 topic':>12}{'10 topics':>12}   (us per Produce dispatch)")
    plain = {ApiKey.PRODUCE: inner}[ApiKey.PRODUCE]
    row = [_time(plain, _request(t), args.seconds) for t in (1, 10)]
    print(f"{'none (plain handler)':<28}{row[0]:>12.2f}{row[1]:>12.2f}")
    for n in (0, 100, 10_000):
        image = _image(n)
        checker = AuthzChecker(AuthorizerHolder(AuthorizerConfig(), lambda i=image: i),
                               lambda i=image: i)
        handler = secure_handlers({ApiKey.PRODUCE: inner}, checker, "broker")[ApiKey.PRODUCE]
        row = [_time(handler, _request(t), args.seconds) for t in (1, 10)]
        print(f"{f'StandardAuthorizer, {n + 1} ACLs':<28}{row[0]:>12.2f}{row[1]:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
