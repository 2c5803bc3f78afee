"""Our own small async Kafka client, for the CLI tools and for broker -> controller RPCs.

Two layers:

- ``KafkaConnection``: one TCP connection (an ``asyncio.Protocol``). Requests carry correlation
  ids and are pipelined: any number of concurrent ``send`` calls share the connection, and
  responses are matched to requests by correlation id (not by order, although our server keeps
  order). On connect it negotiates versions with ApiVersions (KIP-511: v3 with our software name
  and version; on error 35 it reads the v0 body the broker sends and retries at the highest
  ApiVersions version both support). ``send(api_key, request)`` then picks, per API, the
  highest version both sides support. It never assumes Metadata exists, so it also talks to
  a controller listener (ApiVersions, then e.g. BrokerHeartbeat).
- ``KafkaClient``: a cluster. Bootstraps from a server list, caches Metadata (brokers,
  controller id, cluster id, topics -> partitions -> leader/epoch/replicas/ISR), pools one
  connection per broker and routes requests to a node, any node, the controller or a
  partition leader, retrying retriable errors with exponential backoff and a metadata refresh
  between attempts, under an overall deadline.

Failure semantics, following Kafka's ``NetworkClient``:

- A connection that is lost (peer closed, reset, malformed or oversized response frame, a
  response with a correlation id we never sent) fails every pending request at once with a
  ``KafkaConnectionError`` (a ``ConnectionError``).
- A request that gets no answer within its timeout fails with ``KafkaTimeoutError`` (a
  ``TimeoutError``), and the connection is closed: the server answers in order, so everything
  behind the stuck request is stuck too. Its other pending requests fail with
  ``KafkaConnectionError``. The next ``KafkaClient`` request to that node reconnects.
- Retrying is the caller's choice of API: ``KafkaConnection`` never retries; ``KafkaClient``
  retries connection errors, client timeouts and error codes whose class is ``retriable`` in
  ``broker.protocol.errors``. Error codes live in different places in every response, so the
  caller passes ``check(response) -> error code | None`` to say which one counts (see
  ``any_error``). A retried request is sent again as is: for non-idempotent requests (Produce
  without idempotence) a retry after a timeout may duplicate, as in Kafka.

Where things live: ``errors`` (the client's exceptions), ``connection`` (``KafkaConnection``
and version negotiation), ``metadata`` (the cluster metadata a client caches) and ``cluster``
(``KafkaClient``: routing, retries, the metadata cache). This package is the public face:
import from ``broker.client``.
"""

from broker.client.cluster import ClientStats, KafkaClient, any_error, parse_address
from broker.client.connection import (
    CLIENT_SOFTWARE_NAME,
    CLIENT_SOFTWARE_VERSION,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RESPONSE_BYTES,
    KafkaConnection,
    choose_version,
)
from broker.client.errors import (
    KafkaAuthenticationError,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NoBrokersAvailableError,
)
from broker.client.metadata import BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo
from broker.protocol.errors import UnsupportedVersionError

__all__ = [
    "CLIENT_SOFTWARE_NAME",
    "CLIENT_SOFTWARE_VERSION",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "BrokerInfo",
    "ClientStats",
    "ClusterMetadata",
    "KafkaAuthenticationError",
    "KafkaClient",
    "KafkaConnection",
    "KafkaConnectionError",
    "KafkaProtocolError",
    "KafkaTimeoutError",
    "NoBrokersAvailableError",
    "PartitionInfo",
    "TopicInfo",
    "UnsupportedVersionError",
    "any_error",
    "choose_version",
    "parse_address",
]
