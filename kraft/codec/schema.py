"""Schema declarations: array types, fields with Kafka's per-field version attributes, and
structs, each with the slots dataclass generated for its values."""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

from kraft.codec.primitives import (
    ALL_VERSIONS,
    BYTES,
    RECORDS,
    STRING,
    Primitive,
    SchemaError,
    Versions,
    VersionsSpec,
)


class Array:
    """``[]elem``: int32 count (-1 = null), or uvarint count+1 (0 = null) in flexible versions."""

    __slots__ = ("elem",)

    def __init__(self, elem: Primitive | Struct) -> None:
        if isinstance(elem, Array) or elem is RECORDS:
            raise SchemaError(f"arrays of {elem!r} are not supported (as in Kafka)")
        self.elem = elem

    def __repr__(self) -> str:
        return f"Array({self.elem!r})"


FieldType = Union[Primitive, Array, "Struct"]

_MISSING: Any = object()


class Field:
    """One field of a struct, with Kafka's per-field version attributes.

    ``versions`` defaults to ``tagged_versions`` if that is given, else "0+". ``tag`` without
    ``tagged_versions`` means tagged in all of ``versions``. ``flexible_versions`` overrides the
    message's flexible versions for this field's own encoding only (string/bytes; Kafka uses it
    to keep RequestHeader.client_id a non-compact string).
    """

    __slots__ = (
        "about",
        "default",
        "flexible_versions",
        "has_factory",
        "ignorable",
        "name",
        "nullable_versions",
        "tag",
        "tagged_versions",
        "type",
        "versions",
    )

    def __init__(self, name: str, type: FieldType, versions: VersionsSpec = None, *,
                 nullable_versions: VersionsSpec = None, tagged_versions: VersionsSpec = None,
                 tag: int | None = None, default: Any = _MISSING, ignorable: bool = False,
                 flexible_versions: VersionsSpec = _MISSING, about: str = "") -> None:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise SchemaError(f"invalid field name {name!r}")
        self.name = name
        self.type = type
        self.tagged_versions = Versions.parse(tagged_versions)
        if versions is None:
            versions = self.tagged_versions if not self.tagged_versions.empty else ALL_VERSIONS
        self.versions = Versions.parse(versions)
        if tag is not None and self.tagged_versions.empty:
            self.tagged_versions = self.versions
        self.nullable_versions = Versions.parse(nullable_versions)
        self.tag = tag
        self.ignorable = ignorable
        self.flexible_versions = (None if flexible_versions is _MISSING
                                  else Versions.parse(flexible_versions))
        self.about = about
        self._check()
        self.has_factory = False
        self.default = self._resolve_default(default)

    def _check(self) -> None:
        where = f"field {self.name}"
        if self.versions.empty:
            raise SchemaError(f"{where}: versions must not be empty")
        if not self.nullable_versions.empty:
            nullable_ok = isinstance(self.type, (Array, Struct)) or self.type.nullable_ok
            if not nullable_ok:
                raise SchemaError(f"{where}: type {self.type!r} cannot be nullable")
        if self.tag is not None:
            if self.tag < 0:
                raise SchemaError(f"{where}: tags cannot be negative")
            if not self.tagged_versions.open_ended:
                raise SchemaError(f"{where}: taggedVersions must be open-ended ('N+')")
            if not self.versions.contains_all(self.tagged_versions):
                raise SchemaError(f"{where}: taggedVersions must be a subset of versions")
            if self.type is RECORDS:
                raise SchemaError(f"{where}: records fields cannot be tagged")
        elif not self.tagged_versions.empty:
            raise SchemaError(f"{where}: taggedVersions without a tag")
        if self.flexible_versions is not None and self.type not in (STRING, BYTES):
            raise SchemaError(f"{where}: only string and bytes fields may override flexibleVersions")

    def _resolve_default(self, default: Any) -> Any:
        t = self.type
        where = f"field {self.name}"
        if default is None or (default is _MISSING and t is RECORDS):
            if t is not RECORDS and not self.nullable_versions.contains_all(self.versions):
                raise SchemaError(f"{where}: null default but not nullable in all versions")
            return None
        if isinstance(t, (Array, Struct)):
            if default is not _MISSING:
                raise SchemaError(f"{where}: the only defaults for {t!r} are empty and None")
            self.has_factory = True
            return list if isinstance(t, Array) else t.cls
        if default is _MISSING:
            return t.default
        if t.kind in ("bytes", "records") and default != b"":
            raise SchemaError(f"{where}: the only defaults for bytes are b'' and None")
        if not isinstance(default, t.py_type) or (t.py_type is int and isinstance(default, bool)):
            raise SchemaError(f"{where}: default {default!r} is not a {t.name}")
        if isinstance(default, int) and t.lo is not None and t.hi is not None \
                and not t.lo <= default <= t.hi:
            raise SchemaError(f"{where}: default {default!r} out of range for {t.name}")
        return default

    def make_default(self) -> Any:
        """A fresh default value (a new list or struct instance where the default is mutable)."""
        return self.default() if self.has_factory else self.default

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.type!r}, {str(self.versions)!r})"


# ---------------------------------------------------------------------------------------------
# Structs and messages


def _make_repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        parts = [f"{n}={getattr(self, n)!r}" for n in names]
        if self._unknown_tagged_fields:
            parts.append(f"_unknown_tagged_fields={self._unknown_tagged_fields!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
    return __repr__


class Struct:
    """A named group of fields; a generated slots dataclass (``.cls``) holds its values.

    Calling the struct constructs an instance: ``FetchTopic(topic="t", partitions=[...])``.
    """

    def __init__(self, name: str, fields: Sequence[Field], *, frozen: bool = False) -> None:
        if not name.isidentifier():
            raise SchemaError(f"invalid struct name {name!r}")
        self.name = name
        self.frozen = frozen
        self.fields: tuple[Field, ...] = tuple(fields)
        seen: set[str] = set()
        tags: dict[int, str] = {}
        for f in self.fields:
            if f.name in seen:
                raise SchemaError(f"{name}: duplicate field {f.name}")
            seen.add(f.name)
            if f.tag is not None:
                if f.tag in tags:
                    raise SchemaError(f"{name}: fields {tags[f.tag]} and {f.name} share tag {f.tag}")
                tags[f.tag] = f.name
        self.cls: type = self._make_class(frozen)

    def _make_class(self, frozen: bool) -> type:
        specs: list[tuple[str, Any, Any]] = []
        for f in self.fields:
            ann = _annotation(f)
            if f.has_factory:
                specs.append((f.name, ann, dataclasses.field(default_factory=f.default)))
            else:
                specs.append((f.name, ann, f.default))
        specs.append(("_unknown_tagged_fields", tuple, ()))
        names = tuple(f.name for f in self.fields)
        return dataclasses.make_dataclass(
            self.name, specs, slots=True, frozen=frozen, repr=False,
            namespace={"__repr__": _make_repr(names), "__module__": __name__})

    def __call__(self, **values: Any) -> Any:
        return self.cls(**values)

    def __repr__(self) -> str:
        return f"Struct({self.name!r})"

    def _walk(self) -> Iterable[Struct]:
        yield self
        for f in self.fields:
            t = f.type.elem if isinstance(f.type, Array) else f.type
            if isinstance(t, Struct):
                yield from t._walk()


def _annotation(f: Field) -> Any:
    t = f.type
    if isinstance(t, Array):
        elem = t.elem.cls if isinstance(t.elem, Struct) else t.elem.py_type
        ann: Any = list[elem]  # type: ignore[valid-type]
    elif isinstance(t, Struct):
        ann = t.cls
    else:
        ann = t.py_type
    if not f.nullable_versions.empty or f.default is None:
        ann = ann | None
    return ann
