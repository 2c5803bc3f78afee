"""Flat encoders and decoders: one ``struct`` call per message for the messages whose fields are
all fixed-size or arrays of fixed-size elements (``PartitionRecord``, broker fencing records,
most of the metadata log).

Such a message's layout is fixed once its array lengths are known (its *shape*), so the code
generator (``codegen._Gen.flat``) emits, next to the general ``_encode``/``_decode``:

- ``_encode_flat(o, a)``: reads the array lengths, looks up (or builds) the ``struct.Struct``
  of that shape and packs every field, count and the empty tagged-fields section in one call;
- ``_decode_flat(buf, pos)``: walks the array counts to learn the shape, checks that the whole
  message is there, unpacks it in one call and fills the object from the tuple.

Anything off the flat path goes to the general function, which then encodes, decodes or raises
exactly as it always does: a tagged field or a field absent at this version holding a
non-default value, unknown tagged fields, an array of ``_MAX_FLAT_COUNT`` or more elements, a
null or oversized count, a tagged-fields section that is not empty, or input too short. Both
paths give the same bytes and the same objects (tests/unit/test_codec_flat.py checks it on
generated messages).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from kraft.codec.primitives import UUID, Primitive
from kraft.codec.schema import Array

if TYPE_CHECKING:
    from kraft.codec.codegen import _Gen, _Slot
    from kraft.codec.message import Message

# Array lengths are packed 6 bits each into the shape key; the compact count (n + 1) then
# always fits in one byte.
_MAX_FLAT_COUNT = 63
_SHAPE_BITS = 6
_MAX_SHAPES = 4096  # per message version; a flood of new shapes resets the cache


class _Shapes:
    """The ``struct.Struct`` of each shape of one message version, built on first use.

    ``parts`` is the layout: ``("f", fmt)`` for a run of fixed fields, ``("a", fmt, count_fmt)``
    for an array of ``fmt`` elements after its count (``"B"`` compact, ``"i"`` classic) and
    ``("u", "", count_fmt)`` for an array of UUIDs packed as one ``16 * n`` bytes string. The
    decode layout skips counts and the tagged-fields byte (``x``): they were read already.
    """

    __slots__ = ("cache", "decoding", "parts", "tail")

    def __init__(self, parts: list[tuple[str, ...]], tail: str, decoding: bool) -> None:
        self.parts = parts
        self.tail = tail
        self.decoding = decoding
        self.cache: dict[int, struct.Struct] = {}

    def build(self, key: int, counts: tuple[int, ...]) -> struct.Struct:
        fmt = [">"]
        it = iter(counts)
        for part in self.parts:
            if part[0] == "f":
                fmt.append(part[1])
                continue
            n = next(it)
            fmt.append("x" * (1 if part[2] == "B" else 4) if self.decoding else part[2])
            fmt.append(f"{n}{part[1]}" if part[0] == "a" else f"{16 * n}s")
        fmt.append(("x" if self.decoding else "B") if self.tail else "")
        s = struct.Struct("".join(fmt))
        if len(self.cache) >= _MAX_SHAPES:
            self.cache.clear()
        self.cache[key] = s
        return s


def flat_layout(gen: _Gen, msg: Message) -> list[tuple[_Slot, str]] | None:
    """The present non-tagged fields of ``msg`` with their kind (``f`` fixed, ``a`` array of
    fixed, ``u`` array of UUIDs), or None if the message cannot be flat."""
    if msg.frozen:
        return None
    out: list[tuple[_Slot, str]] = []
    for sl in gen.slots(msg):
        if not sl.present or sl.tagged:
            continue
        t = sl.field.type
        if isinstance(t, Primitive) and t.kind == "fixed":
            out.append((sl, "f"))
        elif isinstance(t, Array) and isinstance(t.elem, Primitive) and t.elem.kind == "fixed" \
                and not sl.nullable:
            out.append((sl, "u" if t.elem is UUID else "a"))
        else:
            return None
    return out


def _uuid_bytes(expr: str) -> str:
    return f"{expr}.int.to_bytes(16, 'big')"


def emit_flat(gen: _Gen, msg: Message) -> bool:
    """Emit ``_encode_flat`` and ``_decode_flat`` for ``msg`` (after ``gen.module``); False if
    the message has a field the flat path does not cover."""
    layout = flat_layout(gen, msg)
    if layout is None:
        return False
    parts: list[tuple[str, ...]] = []
    for sl, kind in layout:
        t = sl.field.type
        count_fmt = "B" if sl.compact else "i"
        if kind == "f":
            assert isinstance(t, Primitive)
            if parts and parts[-1][0] == "f":
                parts[-1] = ("f", parts[-1][1] + (t.fmt or ""))
            else:
                parts.append(("f", t.fmt or ""))
        else:
            assert isinstance(t, Array) and isinstance(t.elem, Primitive)
            parts.append((kind, t.elem.fmt or "", count_fmt))
    tail = "B" if gen.flexible else ""
    enc_shapes = gen.const(_Shapes(parts, tail, False), "FE")
    dec_shapes = gen.const(_Shapes(parts, tail, True), "FD")
    _emit_encode(gen, msg, layout, enc_shapes)
    _emit_decode(gen, msg, layout, dec_shapes)
    return True


def _emit_encode(gen: _Gen, msg: Message, layout: list[tuple[_Slot, str]], shapes: str) -> None:
    gen.emit(0, "")
    gen.emit(0, "def _encode_flat(o, a):")
    args: list[str] = []
    counts: list[str] = []
    for sl, kind in layout:
        name = sl.field.name
        if kind == "f":
            args.append(_uuid_bytes(f"o.{name}") if sl.field.type is UUID else f"o.{name}")
            continue
        v, m = gen.var("v"), gen.var("m")
        gen.emit(1, f"{v} = o.{name}")
        gen.emit(1, f"{m} = len({v})")
        counts.append(m)
        args.append(f"{m} + 1" if sl.compact else m)
        if kind == "a":
            args.append(f"*{v}")
        else:
            args.append(f"(b''.join([{_uuid_bytes('x')} for x in {v}]) if {m} else b'')")
    if gen.flexible:
        args.append("0")
    # Off the flat path: long arrays, non-default tagged or absent fields, unknown tags.
    conds = [f"{m} >= {_MAX_FLAT_COUNT}" for m in counts]
    for sl in gen.slots(msg):
        f = sl.field
        if sl.tagged or (not sl.present and not f.ignorable):
            v = gen.var("x")
            gen.emit(1, f"{v} = o.{f.name}")
            conds.append(gen.nondefault(f, v))
    conds.append("o._unknown_tagged_fields")
    gen.emit(1, f"if {' or '.join(conds)}:")
    gen.emit(2, "return _encode(o, a)")
    key = " | ".join(f"{m} << {_SHAPE_BITS * i}" if i else m for i, m in enumerate(counts)) or "0"
    s = gen.var("st")
    gen.emit(1, f"{s} = {shapes}.cache.get({key})")
    gen.emit(1, f"if {s} is None: {s} = {shapes}.build({key}, ({''.join(c + ', ' for c in counts)}))")
    gen.emit(1, f"a({s}.pack({', '.join(args)}))")
    gen.emit(1, "return None")


def _emit_decode(gen: _Gen, msg: Message, layout: list[tuple[_Slot, str]], shapes: str) -> None:
    gen.emit(0, "")
    gen.emit(0, "def _decode_flat(buf, pos):")
    gen.emit(1, "try:")
    gen.emit(2, "p = pos")
    fixed = 0
    counts: list[str] = []
    for sl, kind in layout:
        t = sl.field.type
        if kind == "f":
            assert isinstance(t, Primitive)
            fixed += t.size
            continue
        assert isinstance(t, Array) and isinstance(t.elem, Primitive)
        c = gen.var("c")
        at = f"p + {fixed}" if fixed else "p"
        if sl.compact:
            gen.emit(2, f"{c} = buf[{at}] - 1")
            step = 1
        else:
            gen.emit(2, f"{c}, = _I.unpack_from(buf, {at})")
            step = 4
        gen.emit(2, f"if not 0 <= {c} < {_MAX_FLAT_COUNT}: return _decode(buf, pos)")
        gen.emit(2, f"p += {fixed + step} + {t.elem.size} * {c}")
        fixed = 0
        counts.append(c)
    if fixed:
        gen.emit(2, f"p += {fixed}")
    if gen.flexible:  # an empty tagged-fields section, inside the buffer
        gen.emit(2, "if p >= len(buf) or buf[p]: return _decode(buf, pos)")
        gen.emit(2, "p += 1")
    else:
        gen.emit(2, "if p > len(buf): return _decode(buf, pos)")
    gen.emit(1, "except (IndexError, _StructError):")
    gen.emit(2, "return _decode(buf, pos)")
    key = " | ".join(f"{c} << {_SHAPE_BITS * i}" if i else c for i, c in enumerate(counts)) or "0"
    s = gen.var("st")
    gen.emit(1, f"{s} = {shapes}.cache.get({key})")
    gen.emit(1, f"if {s} is None: {s} = {shapes}.build({key}, ({''.join(c + ', ' for c in counts)}))")
    gen.emit(1, f"t = {s}.unpack_from(buf, pos)")
    gen.emit(1, f"o = _new({gen.const(msg.cls, 'C')})")
    # Fields come out of t in order: at static indexes until the first array, then at ``i``
    # (the index after the last array) plus an offset.
    index, dynamic = 0, False
    kinds = {id(sl): kind for sl, kind in layout}
    counts_iter = iter(counts)
    for sl in gen.slots(msg):
        f = sl.field
        kind = kinds.get(id(sl))
        if kind is None:  # absent at this version, or tagged (the section was empty)
            gen.emit(1, f"o.{f.name} = {gen.default_expr(f)}")
            continue
        here = (f"i + {index}" if index else "i") if dynamic else str(index)
        if kind == "f":
            item = f"t[{here}]"
            gen.emit(1, f"o.{f.name} = {'_uuid(' + item + ')' if f.type is UUID else item}")
            index += 1
            continue
        c = next(counts_iter)
        if kind == "a":
            gen.emit(1, f"e = {here} + {c}")
            gen.emit(1, f"o.{f.name} = list(t[{here}:e]) if {c} else []")
            gen.emit(1, "i = e")
        else:
            gen.emit(1, f"b = t[{here}]")
            gen.emit(1, f"o.{f.name} = [_uuid(b[k:k + 16]) for k in range(0, 16 * {c}, 16)] "
                        f"if {c} else []")
            gen.emit(1, f"i = {here} + 1")
        dynamic, index = True, 0
    gen.emit(1, "o._unknown_tagged_fields = ()")
    gen.emit(1, "return o, p")
