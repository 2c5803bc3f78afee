"""Declarative schema engine for the Kafka wire protocol and KRaft metadata records.

It lives in ``kraft`` because both are written with it: the metadata records
(``kraft.metadata_records``) and the wire schemas (``broker.protocol``), and ``kraft`` may not
import ``broker``. Pure: no I/O.

Schemas are declared in Python with the shape of Kafka's JSON message specs
(``clients/src/main/resources/common/message/*.json``)::

    ApiVersionsRequest = Message("ApiVersionsRequest", api_key=18, valid_versions="0-3",
                                 flexible_versions="3+", fields=[
        Field("client_software_name", STRING, "3+"),
        Field("client_software_version", STRING, "3+"),
    ])
    req = ApiVersionsRequest(client_software_name="kafka-python")
    data = ApiVersionsRequest.encode(req, 3)
    same, end = ApiVersionsRequest.decode(data, 3)

Why code generation: encode and decode run on every request, and per-request CPU is our first
limit (docs/architecture.md, "Performance shape"). Each (message, version) is compiled once, lazily, into one straight-line Python
function: version checks, flexible/compact choices and nullability are resolved at compile time,
runs of fixed-size fields become a single precompiled ``struct.Struct`` call, and nested structs
are inlined. ``Message.generated_source(version)`` shows the result.

Value conventions (Kafka's defaults in brackets):

- ints, float64 [0]; bool [False]; string [""]; bytes [b""] (decoded as ``bytes``).
- uuid: ``uuid.UUID``; Kafka's zero UUID (``ZERO_UUID``) is its null and default.
- records [None]: raw bytes, never parsed here. Decoded as a zero-copy ``memoryview`` slice of
  the input buffer (the request buffer stays alive while the value does); encode accepts any
  bytes-like object.
- arrays [[]]: ``list`` (any sized iterable on encode); struct [an empty instance].
- a field absent at a version is not written and decodes to its default; writing a non-default
  value into such a field raises ``UnsupportedVersionError`` unless the field is ``ignorable``.
- unknown tagged fields are kept, in arrival order, as ``((tag, bytes), ...)`` in each object's
  ``_unknown_tagged_fields`` and written back on encode.

Generated classes are mutable slots dataclasses: a frozen dataclass ``__init__`` costs about 3x
more per object on the decode path, and Kafka responses are built up incrementally. Pass
``frozen=True`` to ``Struct``/``Message`` where immutability matters more than speed.

The engine is split by concern: ``primitives`` (errors, varints, UUIDs, version ranges and the
scalar types), ``schema`` (arrays, fields and structs), ``codegen`` (the code generator),
``flat`` (one ``struct`` call per message for those made only of fixed fields and arrays of
them, such as ``PartitionRecord``) and ``message`` (``Message``: compilation, encode and
decode). Import from ``kraft.codec``.
"""

from kraft.codec.message import Message
from kraft.codec.primitives import (
    ALL_VERSIONS,
    BOOL,
    BYTES,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    NO_VERSIONS,
    RECORDS,
    STRING,
    UINT16,
    UINT32,
    UUID,
    UVARINT,
    VARINT,
    VARLONG,
    ZERO_UUID,
    CodecError,
    DecodeError,
    EncodeError,
    Primitive,
    SchemaError,
    UnsupportedVersionError,
    Versions,
    VersionsSpec,
    read_uvarint,
    read_uvarlong,
    read_varint,
    read_varlong,
    size_of_uvarint,
    size_of_varint,
    size_of_varlong,
    write_uvarint,
    write_uvarlong,
    write_varint,
    write_varlong,
)
from kraft.codec.schema import Array, Field, FieldType, Struct

__all__ = [
    "ALL_VERSIONS",
    "BOOL",
    "BYTES",
    "FLOAT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "NO_VERSIONS",
    "RECORDS",
    "STRING",
    "UINT16",
    "UINT32",
    "UUID",
    "UVARINT",
    "VARINT",
    "VARLONG",
    "ZERO_UUID",
    "Array",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "Field",
    "FieldType",
    "Message",
    "Primitive",
    "SchemaError",
    "Struct",
    "UnsupportedVersionError",
    "Versions",
    "VersionsSpec",
    "read_uvarint",
    "read_uvarlong",
    "read_varint",
    "read_varlong",
    "size_of_uvarint",
    "size_of_varint",
    "size_of_varlong",
    "write_uvarint",
    "write_uvarlong",
    "write_varint",
    "write_varlong",
]
