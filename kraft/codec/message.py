"""``Message``, a top-level versioned struct (a request or response body, a metadata record):
it compiles each version on first use and encodes and decodes with the generated functions.
Also the explanation of a failed encode (cold path)."""

from __future__ import annotations

import linecache
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from kraft.codec.codegen import _Gen
from kraft.codec.primitives import (
    _MAX_STRING_BYTES,
    BOOL,
    FLOAT64,
    STRING,
    UUID,
    CodecError,
    DecodeError,
    EncodeError,
    SchemaError,
    UnsupportedVersionError,
    Versions,
    VersionsSpec,
)
from kraft.codec.schema import Array, Field, FieldType, Struct

_Encoder = Callable[[Any, Callable[[Any], None]], None]
_Decoder = Callable[[memoryview, int], tuple[Any, int]]


class Message(Struct):
    """A top-level versioned struct: a request/response body or a metadata record.

    ``encode``/``decode`` compile the version on first use and cache the generated functions.
    Nested struct classes are reachable by name: ``FetchRequest.FetchTopic(topic="t")``.
    """

    def __init__(self, name: str, fields: Sequence[Field], *, valid_versions: VersionsSpec,
                 flexible_versions: VersionsSpec = "none", api_key: int | None = None,
                 frozen: bool = False) -> None:
        super().__init__(name, fields, frozen=frozen)
        self.api_key = api_key
        self.valid_versions = Versions.parse(valid_versions)
        self.flexible_versions = Versions.parse(flexible_versions)
        if self.valid_versions.empty:
            raise SchemaError(f"{name}: validVersions must not be empty")
        if not (self.flexible_versions.empty or self.flexible_versions.open_ended):
            raise SchemaError(f"{name}: flexibleVersions must be 'none' or open-ended")
        self.structs: dict[str, Struct] = {}
        for s in self._walk():
            other = self.structs.setdefault(s.name, s)
            if other is not s:
                raise SchemaError(f"{name}: two different structs named {s.name}")
            for f in s.fields:
                tagged = f.tagged_versions.intersect(self.valid_versions)
                if not self.flexible_versions.contains_all(tagged):
                    raise SchemaError(f"{name}.{s.name}.{f.name}: tagged in non-flexible versions")
        self._encoders: dict[int, _Encoder] = {}
        self._decoders: dict[int, _Decoder] = {}
        self._sources: dict[int, str] = {}
        self._general: dict[int, tuple[_Encoder, _Decoder]] = {}

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes: expose nested struct classes by name.
        structs = self.__dict__.get("structs")
        if structs is not None and name in structs and name != self.name:
            return structs[name].cls
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Message({self.name!r}, api_key={self.api_key}, valid_versions={self.valid_versions})"

    # -- hot path ---------------------------------------------------------------------------

    def encode(self, obj: Any, version: int) -> bytes:
        """Serialize ``obj`` (an instance of ``self.cls``) at ``version``."""
        out: list[Any] = []
        self.encode_to(obj, version, out)
        return b"".join(out)

    def encode_to(self, obj: Any, version: int, out: list[Any]) -> None:
        """Append the encoding of ``obj`` to ``out`` as bytes-like chunks (records values are
        appended as given, uncopied), so a frame header can go in front without a copy."""
        try:
            enc = self._encoders[version]
        except KeyError:
            enc = self._compile(version)[0]
        if obj.__class__ is not self.cls:
            raise EncodeError(f"expected a {self.name}, got {type(obj).__name__}")
        try:
            enc(obj, out.append)
        except CodecError:
            raise
        except (struct.error, TypeError, ValueError, AttributeError, OverflowError) as e:
            problem = _find_problem(self, obj, version, self.name) or str(e)
            raise EncodeError(f"cannot encode {self.name} v{version}: {problem}") from e

    def decode(self, buf: Any, version: int, offset: int = 0) -> tuple[Any, int]:
        """Parse one ``version`` instance from ``buf`` at ``offset``; return (obj, end offset).

        Trailing bytes are left to the caller (compare the end offset with ``len(buf)``).
        """
        try:
            dec = self._decoders[version]
        except KeyError:
            dec = self._compile(version)[1]
        if type(buf) is not memoryview:
            buf = memoryview(buf)
        if offset < 0:
            raise DecodeError(f"negative offset {offset}")
        try:
            return dec(buf, offset)
        except DecodeError:
            raise
        except (struct.error, IndexError, ValueError, OverflowError) as e:
            raise DecodeError(f"malformed {self.name} v{version} at offset {offset}: {e}") from e

    # -- compilation ------------------------------------------------------------------------

    def generated_source(self, version: int) -> str:
        """The Python source compiled for ``version`` (for debugging and review)."""
        if version not in self._sources:
            self._compile(version)
        return self._sources[version]

    def _compile(self, version: int) -> tuple[_Encoder, _Decoder]:
        if version not in self.valid_versions:
            raise UnsupportedVersionError(
                f"{self.name} does not support version {version} (valid: {self.valid_versions})")
        gen = _Gen(version, version in self.flexible_versions)
        source = gen.module(self)
        filename = f"<codec {self.name} v{version}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        ns = gen.ns
        # The source is generated here from schema declarations, never from input bytes.
        exec(compile(source, filename, "exec"), ns)  # noqa: S102
        # The flat functions where generated (kraft.codec.flat); they fall back to the general
        # ones, kept in _general for tests that hold one against the other.
        self._general[version] = ns["_encode"], ns["_decode"]
        enc = ns.get("_encode_flat", ns["_encode"])
        dec = ns.get("_decode_flat", ns["_decode"])
        self._sources[version] = source
        self._encoders[version] = enc
        self._decoders[version] = dec
        return enc, dec


# ---------------------------------------------------------------------------------------------
# Error explanation (cold path: only runs after an encode failed)


def _find_problem(s: Struct, obj: Any, version: int, path: str) -> str | None:
    if not isinstance(obj, s.cls):
        return f"{path}: expected {s.name}, got {type(obj).__name__}"
    for f in s.fields:
        if version in f.versions:
            nullable = version in f.nullable_versions
            p = _check_value(f.type, getattr(obj, f.name), nullable, version, f"{path}.{f.name}")
            if p:
                return p
    return None


def _check_value(t: FieldType, value: Any, nullable: bool, version: int, path: str) -> str | None:
    if value is None:
        return None if nullable else f"{path}: null in a non-nullable field"
    if isinstance(t, Struct):
        return _find_problem(t, value, version, path)
    if isinstance(t, Array):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            return f"{path}: expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            p = _check_value(t.elem, item, False, version, f"{path}[{i}]")
            if p:
                return p
        return None
    ok: bool
    if t is STRING:
        ok = isinstance(value, str)
        if ok and len(value.encode("utf-8", "surrogatepass")) > _MAX_STRING_BYTES:
            return f"{path}: string longer than {_MAX_STRING_BYTES} bytes"
    elif t.kind in ("bytes", "records"):
        ok = isinstance(value, (bytes, bytearray, memoryview))
    elif t is UUID:
        ok = isinstance(value, uuid.UUID)
    elif t is FLOAT64:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t is BOOL:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and t.lo is not None and not t.lo <= value <= (t.hi or 0):
            return f"{path}: {value} out of range for {t.name}"
    return None if ok else f"{path}: {value!r} is not a valid {t.name}"
