"""Operating a node: the Kafka admin APIs on the broker listener (``apis``: forwarded to the
active controller or answered from the image), the HTTP admin API (``http``) and its route
table and OpenAPI document (``openapi``), Prometheus metrics (``metrics``).

May import every other room of ``broker`` except ``node``.
"""
