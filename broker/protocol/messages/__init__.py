"""Request/response schemas, one module per API.

Each module defines ``API_KEY``, ``REQUEST``, ``RESPONSE`` (``kraft.codec.Message``), ``LISTENERS``
(the listeners that serve the API: "broker" and/or "controller") and readable aliases
(``ProduceRequest = REQUEST``). ``broker.protocol.api_keys`` discovers them all automatically.
"""
