"""The code generator: compiles one (message, version) into straight-line Python source for its
``_encode`` and ``_decode`` functions (``Message.generated_source`` shows the result)."""

from __future__ import annotations

import dataclasses
import itertools
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kraft.codec.flat import emit_flat
from kraft.codec.primitives import (
    _B1,
    _MAX_STRING_BYTES,
    BYTES,
    STRING,
    UUID,
    DecodeError,
    EncodeError,
    Primitive,
    UnsupportedVersionError,
    _uuid,
    read_uvarint,
    read_varint,
    read_varlong,
    write_uvarint,
    write_varint,
    write_varlong,
)
from kraft.codec.schema import Array, Field, FieldType, Struct

if TYPE_CHECKING:
    from kraft.codec.message import Message


# ---------------------------------------------------------------------------------------------
# Code generation


@dataclasses.dataclass(frozen=True, slots=True)
class _Slot:
    """A field as it is at one version."""

    field: Field
    present: bool
    tagged: bool
    nullable: bool
    compact: bool


def _write_tagged(a: Callable[[Any], None], known: list[tuple[int, bytes]],
                  unknown: Sequence[tuple[int, Any]], known_tags: frozenset[int]) -> None:
    """Write a tagged-fields section: count, then (tag, size, data) in ascending tag order."""
    fields = known
    if unknown:
        for tag, _ in unknown:
            if tag in known_tags:
                raise EncodeError(f"attempted to use tag {tag} as an undefined tag")
        fields = sorted([*known, *unknown], key=lambda tf: tf[0])
    a(write_uvarint(len(fields)))
    for tag, data in fields:
        a(write_uvarint(tag))
        a(write_uvarint(len(data)))
        a(data)


def _bad_length(path: str, n: int, pos: int, blen: int) -> DecodeError:
    return DecodeError(f"{path}: length {n} at offset {pos} exceeds the {blen - pos} bytes left")


def _uuid_bytes(expr: str) -> str:
    """The 16 bytes of the UUID ``expr`` (``UUID.bytes`` without its property call)."""
    return f"{expr}.int.to_bytes(16, 'big')"


# Arrays of fixed-size elements are packed and unpacked in one call of a ``struct.Struct`` per
# element count, precompiled for the common small counts.
_CACHED_COUNTS = 64


def _array_structs(fmt: str) -> list[struct.Struct]:
    got = _ARRAY_STRUCTS.get(fmt)
    if got is None:
        got = _ARRAY_STRUCTS[fmt] = [struct.Struct(f">{k}{fmt}") for k in range(_CACHED_COUNTS)]
    return got


_ARRAY_STRUCTS: dict[str, list[struct.Struct]] = {}

_BASE_NS: dict[str, Any] = {
    "_DE": DecodeError, "_EE": EncodeError, "_UVE": UnsupportedVersionError,
    "_ruv": read_uvarint, "_rv": read_varint, "_rvl": read_varlong,
    "_wuv": write_uvarint, "_wv": write_varint, "_wvl": write_varlong,
    "_B1": _B1, "_uuid": _uuid, "_St": struct.Struct,
    "_H": struct.Struct(">h"), "_I": struct.Struct(">i"), "_b": struct.Struct(">b"),
    "_StructError": struct.error, "_wt": _write_tagged, "_badlen": _bad_length, "_new": object.__new__,
}

# Python allows 20 nested loop blocks per function; deeper structs go out of line.
_MAX_INLINE_LOOPS = 8


class _Gen:
    """Emits one module per (message, version): ``_encode(o, a)`` appends chunks through ``a``;
    ``_decode(buf, pos)`` returns (obj, pos). All version logic is resolved here."""

    def __init__(self, version: int, flexible: bool) -> None:
        self.version = version
        self.flexible = flexible
        self.ns: dict[str, Any] = dict(_BASE_NS)
        self.lines: list[str] = []
        self.extra: list[str] = []  # out-of-line functions
        self.loops = 0
        self._ids = itertools.count()
        self._consts: dict[int, str] = {}
        self._slots: dict[int, list[_Slot]] = {}
        self._outlined: dict[tuple[str, int], str] = {}

    # -- helpers ----------------------------------------------------------------------------

    def var(self, hint: str) -> str:
        return f"{hint}{next(self._ids)}"

    def const(self, obj: Any, hint: str = "K") -> str:
        name = self._consts.get(id(obj))
        if name is None:
            name = self._consts[id(obj)] = self.var(f"_{hint}")
            self.ns[name] = obj
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def slots(self, s: Struct) -> list[_Slot]:
        got = self._slots.get(id(s))
        if got is None:
            v = self.version
            got = []
            for f in s.fields:
                present = v in f.versions
                compact = self.flexible if f.flexible_versions is None else v in f.flexible_versions
                got.append(_Slot(f, present, present and v in f.tagged_versions,
                                 present and v in f.nullable_versions, compact))
            self._slots[id(s)] = got
        return got

    def min_size(self, t: FieldType, nullable: bool, compact: bool) -> int:
        """Fewest bytes a value can take; bounds declared counts before allocating."""
        if isinstance(t, Struct):
            if nullable:
                return 1
            size = 1 if self.flexible else 0
            for sl in self.slots(t):
                if sl.present and not sl.tagged:
                    size += self.min_size(sl.field.type, sl.nullable, sl.compact)
            return size
        if isinstance(t, Array):
            return 1 if compact else 4
        if t.kind == "fixed":
            return t.size
        if t.kind == "string":
            return 1 if compact else 2
        if t.kind in ("bytes", "records"):
            return 1 if compact else 4
        return 1

    def default_expr(self, f: Field) -> str:
        if f.has_factory:
            return "[]" if f.default is list else f"{self.const(f.default, 'C')}()"
        if f.default is None:
            return "None"
        return self.const(f.default, "D")

    def nondefault(self, f: Field, v: str) -> str:
        """Condition true when ``v`` differs from the field's default (Kafka's rule)."""
        if f.default is None:
            return f"{v} is not None"
        if f.default is list or f.type is BYTES:
            return f"({v} is None or len({v}) != 0)"
        if f.has_factory:
            return f"{v} != {self.const(f.default(), 'D')}"
        return f"{v} != {self.const(f.default, 'D')}"

    def module(self, msg: Message) -> str:
        self.emit(0, "def _encode(o, a):")
        self.enc_struct(msg, "o", "a", 1, msg.name)
        self.emit(1, "return None")
        self.emit(0, "")
        self.emit(0, "def _decode(buf, pos):")
        self.emit(1, "blen = len(buf)")
        self.dec_struct(msg, "r", 1, msg.name)
        self.emit(1, "return r, pos")
        emit_flat(self, msg)  # _encode_flat/_decode_flat where the message allows
        return "\n".join(self.extra + self.lines) + "\n"

    def outline(self, kind: str, s: Struct, path: str) -> str:
        """Generate ``s`` as a separate function (used only beyond _MAX_INLINE_LOOPS)."""
        key = (kind, id(s))
        name = self._outlined.get(key)
        if name is None:
            name = self._outlined[key] = self.var(f"_{kind}_{s.name}_")
            saved_lines, saved_loops = self.lines, self.loops
            self.lines, self.loops = [], 0
            if kind == "enc":
                self.emit(0, f"def {name}(o, a):")
                self.enc_struct(s, "o", "a", 1, path)
                self.emit(1, "return None")
            else:
                self.emit(0, f"def {name}(buf, pos, blen):")
                self.dec_struct(s, "r", 1, path)
                self.emit(1, "return r, pos")
            self.emit(0, "")
            self.extra.extend(self.lines)
            self.lines, self.loops = saved_lines, saved_loops
        return name

    # -- encode -----------------------------------------------------------------------------

    def enc_struct(self, s: Struct, o: str, a: str, d: int, path: str) -> None:
        slots = self.slots(s)
        for sl in slots:
            f = sl.field
            if not sl.present and not f.ignorable:
                msg = f"attempted to write a non-default {path}.{f.name} at version {self.version}"
                v = self.var("x")
                self.emit(d, f"{v} = {o}.{f.name}")
                self.emit(d, f"if {self.nondefault(f, v)}: raise _UVE({msg!r})")
        run: list[tuple[str, str]] = []
        for sl in slots:
            if not sl.present or sl.tagged:
                continue
            t = sl.field.type
            expr = f"{o}.{sl.field.name}"
            if isinstance(t, Primitive) and t.kind == "fixed":
                run.append((t.fmt or "", _uuid_bytes(expr) if t is UUID else expr))
                continue
            self.flush_pack(run, a, d)
            self.enc_value(t, expr, a, d, sl.nullable, sl.compact, False, f"{path}.{sl.field.name}")
        self.flush_pack(run, a, d)
        if self.flexible:
            self.enc_tagged(slots, o, a, d, path)
        else:
            msg = f"{path}: tagged fields were set, but version {self.version} does not support them"
            self.emit(d, f"if {o}._unknown_tagged_fields: raise _UVE({msg!r})")

    def flush_pack(self, run: list[tuple[str, str]], a: str, d: int) -> None:
        if run:
            packer = self.const(struct.Struct(">" + "".join(c for c, _ in run)), "S")
            self.emit(d, f"{a}({packer}.pack({', '.join(e for _, e in run)}))")
            run.clear()

    def enc_len(self, n: str, compact: bool, wide: bool) -> str:
        """Expression for a length/count prefix (``n`` already +1 when compact)."""
        if compact:
            return f"(_B1[{n}] if {n} < 128 else _wuv({n}))"
        return f"{'_I' if wide else '_H'}.pack({n})"

    def enc_value(self, t: FieldType, expr: str, a: str, d: int, nullable: bool, compact: bool,
                  in_tag: bool, path: str) -> None:
        if isinstance(t, Struct):
            v = self.var("s")
            self.emit(d, f"{v} = {expr}")
            if nullable:
                null = b"\x00" if in_tag else b"\xff"  # tagged: uvarint 0; else int8 -1
                self.emit(d, f"if {v} is None: {a}({null!r})")
                self.emit(d, "else:")
                d += 1
                self.emit(d, f"{a}(b'\\x01')")
            self.enc_struct_maybe_outlined(t, v, a, d, path)
            return
        if isinstance(t, Primitive) and t.kind not in ("string", "bytes", "records"):
            if t.kind == "fixed":
                arg = _uuid_bytes(expr) if t is UUID else expr
                self.emit(d, f"{a}({self.const(struct.Struct('>' + (t.fmt or '')), 'S')}.pack({arg}))")
            else:
                fn = {"uvarint": "_wuv", "varint": "_wv", "varlong": "_wvl"}[t.kind]
                self.emit(d, f"{a}({fn}({expr}))")
            return
        v = self.var("v")
        self.emit(d, f"{v} = {expr}")
        if nullable:
            null = b"\x00" if compact else (b"\xff\xff" if t is STRING else b"\xff\xff\xff\xff")
            self.emit(d, f"if {v} is None:")
            self.emit(d + 1, f"{a}({null!r})")
            self.emit(d, "else:")
            d += 1
        n = self.var("n")
        if t is STRING:
            e = self.var("e")
            self.emit(d, f"{e} = {v}.encode()")
            self.emit(d, f"{n} = len({e}){' + 1' if compact else ''}")
            limit = _MAX_STRING_BYTES + (1 if compact else 0)
            msg = f"{path}: string longer than {_MAX_STRING_BYTES} bytes"
            self.emit(d, f"if {n} > {limit}: raise _EE({msg!r})")
            self.emit(d, f"{a}({self.enc_len(n, compact, False)})")
            self.emit(d, f"{a}({e})")
            return
        self.emit(d, f"{n} = len({v}){' + 1' if compact else ''}")
        self.emit(d, f"{a}({self.enc_len(n, compact, True)})")
        if isinstance(t, Primitive):  # bytes, records
            self.emit(d, f"{a}({v})")
            return
        elem = t.elem
        if isinstance(elem, Primitive) and elem.kind == "fixed":
            if elem is UUID:
                self.emit(d, f"if {v}: {a}(b''.join([{_uuid_bytes('x')} for x in {v}]))")
            else:
                m = self.var("m")
                structs = self.const(_array_structs(elem.fmt or ""), "AS")
                self.emit(d, f"{m} = len({v})")
                self.emit(d, f"if {m}: {a}(({structs}[{m}] if {m} < {_CACHED_COUNTS} "
                             f"else _St('>%d{elem.fmt}' % {m})).pack(*{v}))")
            return
        x = self.var("x")
        self.emit(d, f"for {x} in {v}:")
        self.loops += 1
        if isinstance(elem, Struct):
            self.enc_struct_maybe_outlined(elem, x, a, d + 1, path)
        else:
            self.enc_value(elem, x, a, d + 1, False, compact, in_tag, path)
        self.loops -= 1

    def enc_struct_maybe_outlined(self, t: Struct, v: str, a: str, d: int, path: str) -> None:
        if self.loops >= _MAX_INLINE_LOOPS:
            self.emit(d, f"{self.outline('enc', t, path)}({v}, {a})")
        else:
            self.enc_struct(t, v, a, d, path)

    def enc_tagged(self, slots: list[_Slot], o: str, a: str, d: int, path: str) -> None:
        tagged = sorted((sl for sl in slots if sl.tagged), key=lambda sl: sl.field.tag or 0)
        u = self.var("u")
        self.emit(d, f"{u} = {o}._unknown_tagged_fields")
        if not tagged:
            self.emit(d, f"if {u}: _wt({a}, [], {u}, frozenset())")
            self.emit(d, f"else: {a}(b'\\x00')")
            return
        known = self.const(frozenset(sl.field.tag for sl in tagged), "T")
        tf = self.var("tf")
        self.emit(d, f"{tf} = []")
        for sl in tagged:
            f = sl.field
            v = self.var("t")
            self.emit(d, f"{v} = {o}.{f.name}")
            self.emit(d, f"if {self.nondefault(f, v)}:")
            sub = self.var("sub")
            self.emit(d + 1, f"{sub} = []")
            self.enc_value(f.type, v, f"{sub}.append", d + 1, sl.nullable, sl.compact, True,
                           f"{path}.{f.name}")
            self.emit(d + 1, f"{tf}.append(({f.tag}, b''.join({sub})))")
        self.emit(d, f"if {tf} or {u}: _wt({a}, {tf}, {u}, {known})")
        self.emit(d, f"else: {a}(b'\\x00')")

    # -- decode -----------------------------------------------------------------------------

    def dec_struct(self, s: Struct, target: str, d: int, path: str) -> None:
        slots = self.slots(s)
        cls = self.const(s.cls, "C")
        # Mutable classes are filled in place: object.__new__ plus attribute stores (straight
        # from unpack_from) cost ~25% less than calling the dataclass __init__.
        direct = not s.frozen
        o = self.var("o")
        if direct:
            self.emit(d, f"{o} = _new({cls})")
        values: list[str] = []
        run: list[tuple[str, str, Primitive]] = []
        tagged: list[tuple[_Slot, str]] = []
        for sl in slots:
            f = sl.field
            if not sl.present:
                if direct:
                    self.emit(d, f"{o}.{f.name} = {self.default_expr(f)}")
                else:
                    values.append(self.default_expr(f))
                continue
            v = f"{o}.{f.name}" if direct else self.var("f")
            values.append(v)
            t = f.type
            if sl.tagged:
                tagged.append((sl, v))
            elif isinstance(t, Primitive) and t.kind == "fixed":
                run.append((t.fmt or "", v, t))
            else:
                self.flush_unpack(run, d)
                self.dec_value(t, v, d, sl.nullable, sl.compact, False, f"{path}.{f.name}")
        self.flush_unpack(run, d)
        unknown = "()"
        if self.flexible:
            unknown = self.dec_tagged(tagged, d, path)
        if direct:
            self.emit(d, f"{o}._unknown_tagged_fields = {unknown}")
            self.emit(d, f"{target} = {o}")
        else:
            self.emit(d, f"{target} = {cls}({', '.join([*values, unknown])})")

    def flush_unpack(self, run: list[tuple[str, str, Primitive]], d: int) -> None:
        if not run:
            return
        unpacker = struct.Struct(">" + "".join(c for c, _, _ in run))
        names = ", ".join(v for _, v, _ in run)
        self.emit(d, f"{names}, = {self.const(unpacker, 'S')}.unpack_from(buf, pos)")
        self.emit(d, f"pos += {unpacker.size}")
        for _, v, t in run:
            if t is UUID:
                self.emit(d, f"{v} = _uuid({v})")
        run.clear()

    def dec_len(self, n: str, d: int, compact: bool, wide: bool) -> None:
        """Read a length/count into ``n``; negative means null."""
        if compact:
            self.emit(d, f"{n} = buf[pos]")
            self.emit(d, f"if {n} < 128: pos += 1")
            self.emit(d, f"else: {n}, pos = _ruv(buf, pos)")
            self.emit(d, f"{n} -= 1")
        else:
            self.emit(d, f"{n}, = {'_I' if wide else '_H'}.unpack_from(buf, pos)")
            self.emit(d, f"pos += {4 if wide else 2}")

    def dec_value(self, t: FieldType, v: str, d: int, nullable: bool, compact: bool,
                  in_tag: bool, path: str) -> None:
        if isinstance(t, Struct):
            if nullable:
                m = self.var("m")
                if in_tag:  # Kafka writes a uvarint presence marker inside tagged fields
                    self.emit(d, f"{m}, pos = _ruv(buf, pos)")
                    self.emit(d, f"if {m} == 0: {v} = None")
                else:
                    self.emit(d, f"{m}, = _b.unpack_from(buf, pos)")
                    self.emit(d, "pos += 1")
                    self.emit(d, f"if {m} < 0: {v} = None")
                self.emit(d, "else:")
                d += 1
            self.dec_struct_maybe_outlined(t, v, d, path)
            return
        if isinstance(t, Primitive) and t.kind not in ("string", "bytes", "records"):
            if t.kind == "fixed":
                unpacker = struct.Struct(">" + (t.fmt or ""))
                self.emit(d, f"{v}, = {self.const(unpacker, 'S')}.unpack_from(buf, pos)")
                self.emit(d, f"pos += {unpacker.size}")
                if t is UUID:
                    self.emit(d, f"{v} = _uuid({v})")
            else:
                fn = {"uvarint": "_ruv", "varint": "_rv", "varlong": "_rvl"}[t.kind]
                self.emit(d, f"{v}, pos = {fn}(buf, pos)")
            return
        n = self.var("n")
        self.dec_len(n, d, compact, t is not STRING)
        self.emit(d, f"if {n} < 0:")
        if nullable:
            self.emit(d + 1, f"{v} = None")
        else:
            self.emit(d + 1, f"raise _DE({f'{path}: non-nullable field was serialized as null'!r})")
        self.emit(d, "else:")
        d += 1
        if isinstance(t, Primitive):
            limit = f"{n} > {_MAX_STRING_BYTES} or " if t is STRING else ""
            self.emit(d, f"if {limit}{n} > blen - pos: raise _badlen({path!r}, {n}, pos, blen)")
            if t is STRING:
                self.emit(d, f"{v} = str(buf[pos:pos + {n}], 'utf-8')")
            elif t is BYTES:
                self.emit(d, f"{v} = bytes(buf[pos:pos + {n}])")
            else:  # records stay a zero-copy view of the request buffer
                self.emit(d, f"{v} = buf[pos:pos + {n}]")
            self.emit(d, f"pos += {n}")
            return
        elem = t.elem
        per = max(self.min_size(elem, False, compact), 1)  # Kafka: count <= bytes remaining
        count_bytes = f"{n} * {per}" if per > 1 else n
        self.emit(d, f"if {count_bytes} > blen - pos: raise _badlen({path!r}, {n}, pos, blen)")
        if isinstance(elem, Primitive) and elem.kind == "fixed":
            if elem is UUID:
                self.emit(d, f"{v} = [_uuid(bytes(buf[p:p + 16])) "
                             f"for p in range(pos, pos + 16 * {n}, 16)] if {n} else []")
            else:
                structs = self.const(_array_structs(elem.fmt or ""), "AS")
                self.emit(d, f"{v} = list(({structs}[{n}] if {n} < {_CACHED_COUNTS} "
                             f"else _St('>%d{elem.fmt}' % {n})).unpack_from(buf, pos)) "
                             f"if {n} else []")
            self.emit(d, f"pos += {elem.size} * {n}")
            return
        ap = self.var("ap")
        e = self.var("e")
        self.emit(d, f"{v} = []")
        self.emit(d, f"{ap} = {v}.append")
        self.emit(d, f"for _ in range({n}):")
        self.loops += 1
        if isinstance(elem, Struct):
            self.dec_struct_maybe_outlined(elem, e, d + 1, path)
        else:
            self.dec_value(elem, e, d + 1, False, compact, in_tag, path)
        self.loops -= 1
        self.emit(d + 1, f"{ap}({e})")

    def dec_struct_maybe_outlined(self, t: Struct, v: str, d: int, path: str) -> None:
        if self.loops >= _MAX_INLINE_LOOPS:
            self.emit(d, f"{v}, pos = {self.outline('dec', t, path)}(buf, pos, blen)")
        else:
            self.dec_struct(t, v, d, path)

    def dec_tagged(self, tagged: list[tuple[_Slot, str]], d: int, path: str) -> str:
        """Decode a tagged-fields section; returns the variable holding unknown fields."""
        for sl, v in tagged:
            self.emit(d, f"{v} = {self.default_expr(sl.field)}")
        u, n, tag, size, end = (self.var(h) for h in ("u", "n", "tag", "sz", "end"))
        self.emit(d, f"{u} = ()")
        self.emit(d, f"{n} = buf[pos]")
        self.emit(d, "pos += 1")
        self.emit(d, f"if {n}:")  # usually 0: skip the loop set-up
        d += 1
        self.emit(d, f"if {n} >= 128: {n}, pos = _ruv(buf, pos - 1)")
        self.emit(d, f"for _ in range({n}):")  # each field takes >= 2 bytes: terminates
        self.loops += 1
        d += 1
        self.emit(d, f"{tag}, pos = _ruv(buf, pos)")
        self.emit(d, f"{size}, pos = _ruv(buf, pos)")
        self.emit(d, f"{end} = pos + {size}")
        self.emit(d, f"if {end} > blen: raise _badlen({path + ' tagged field'!r}, {size}, pos, blen)")
        inner = d
        for i, (sl, v) in enumerate(sorted(tagged, key=lambda tv: tv[0].field.tag or 0)):
            f = sl.field
            self.emit(d, f"{'if' if i == 0 else 'elif'} {tag} == {f.tag}:")
            self.dec_value(f.type, v, d + 1, sl.nullable, sl.compact, True, f"{path}.{f.name}")
            msg = f"{path}.{f.name}: tagged field size does not match its contents"
            self.emit(d + 1, f"if pos != {end}: raise _DE({msg!r})")
        if tagged:
            self.emit(d, "else:")
            inner = d + 1
        self.emit(inner, f"{u} += (({tag}, bytes(buf[pos:{end}])),)")
        self.emit(inner, f"pos = {end}")
        self.loops -= 1
        return u
