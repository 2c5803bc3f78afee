"""Operating a node: the Kafka admin APIs on the broker listener (``apis``: forwarded to the
active controller through ``forwarding``, or answered from the image: ``configs`` for
DescribeConfigs, ``producer_ids`` for InitProducerId), the HTTP admin API (``http``, with its
route families ``http_cluster``, ``http_topics``, ``http_groups`` over ``http_common``) and its
route table and OpenAPI document (``openapi``), Prometheus metrics (``metrics``).

May import every other room of ``broker`` except ``node``.
"""
