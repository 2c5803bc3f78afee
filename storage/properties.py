"""Java ``.properties`` files, read and written exactly as ``java.util.Properties`` does.

Reading follows ``Properties.load`` (its ``LineReader`` and ``loadConvert``):

- A *natural line* ends at ``\\n``, ``\\r`` or ``\\r\\n``. Leading whitespace (space, tab, form
  feed) of every natural line is skipped; a line that is then empty is skipped.
- A *logical line* whose first non-whitespace character is ``#`` or ``!`` is a comment. Comments
  never continue onto the next line.
- A natural line ending in an odd number of backslashes continues on the next one: the last
  backslash is dropped, and the leading whitespace of the continuation line is dropped. An empty
  continuation line (only whitespace) ends the logical line.
- The key ends at the first unescaped ``=``, ``:`` or whitespace. Whitespace around the separator
  is skipped, and at most one ``=``/``:`` after whitespace counts as the separator. Trailing
  whitespace of the value is kept.
- Escapes in keys and values: ``\\t \\n \\r \\f``, ``\\uXXXX`` (UTF-16 code unit; surrogate pairs
  are combined into one character), and ``\\x`` -> ``x`` for every other ``x``. A malformed
  ``\\uXXXX`` raises :class:`PropertiesError` (Java's ``IllegalArgumentException``).
- A later key overrides an earlier one.

Writing follows ``Properties.store(OutputStream)``: every space in a key, a leading space in a
value, ``\\ = : # !`` and ``\\t \\n \\r \\f`` are escaped, and every character outside
printable ASCII is written as ``\\uXXXX``, so the output is plain ASCII and ``parse(dump(d)) == d``.

One deliberate difference: Java's ``load(InputStream)`` decodes bytes as ISO-8859-1.
:func:`load_properties` decodes UTF-8 and falls back to ISO-8859-1 only if the bytes are not valid
UTF-8. For ASCII files (all files this module writes) the two are identical.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from storage.fileutil import atomic_write

__all__ = [
    "PropertiesError",
    "dump_properties",
    "load_properties",
    "parse_properties",
    "store_properties",
]

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


class PropertiesError(ValueError):
    """A properties text is malformed (only possible through a bad ``\\uXXXX`` escape)."""


def _logical_lines(text: str) -> list[str]:
    """Split ``text`` into logical lines the way Java's ``Properties.LineReader`` does.

    Each returned line has its leading whitespace removed, comments and blank lines dropped,
    and continuations joined (with the continuation backslash removed). Escapes are untouched.
    """
    lines: list[str] = []
    n = len(text)
    i = 0
    buf: list[str] = []
    skip_ws = True  # skipping leading whitespace of a (natural) line
    appended_line_begin = False  # we are at the start of a continuation line
    preceding_backslash = False
    while i < n:
        c = text[i]
        i += 1
        if skip_ws:
            if c in _WHITESPACE:
                continue
            if not appended_line_begin and (c == "\r" or c == "\n"):
                continue
            skip_ws = False
            appended_line_begin = False
        if not buf and (c == "#" or c == "!"):
            # Comment: consume up to (not including) the line terminator.
            while i < n and text[i] not in "\r\n":
                i += 1
            skip_ws = True
            continue
        if c != "\n" and c != "\r":
            buf.append(c)
            preceding_backslash = (not preceding_backslash) if c == "\\" else False
            continue
        # End of a natural line.
        if not buf:
            skip_ws = True
            continue
        if i >= n:
            # The terminator is the last character of the input: Java returns the line here,
            # even when dropping a continuation backslash leaves it empty (key "", value "").
            if preceding_backslash:
                buf.pop()
            lines.append("".join(buf))
            return lines
        if preceding_backslash:
            buf.pop()  # the continuation backslash is not part of the line
            skip_ws = True
            appended_line_begin = True
            preceding_backslash = False
            if c == "\r" and i < n and text[i] == "\n":
                i += 1
            continue
        lines.append("".join(buf))
        buf = []
        skip_ws = True
    if buf:
        if preceding_backslash:
            buf.pop()
        lines.append("".join(buf))
    return lines


def _load_convert(s: str) -> str:
    """Undo the escapes of a key or value (Java's ``Properties.loadConvert``)."""
    if "\\" not in s:
        return s
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= n:
            # Cannot happen for text split by _logical_lines (an odd trailing backslash is a
            # continuation); Java would throw ArrayIndexOutOfBounds. Treat as a literal backslash.
            out.append("\\")
            break
        c = s[i]
        i += 1
        if c == "u":
            digits = s[i : i + 4]
            if len(digits) < 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise PropertiesError(f"Malformed \\uxxxx encoding in {s!r}")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(c, c))
    return _join_surrogates("".join(out))


def _join_surrogates(s: str) -> str:
    """Combine UTF-16 surrogate pairs (from ``\\uD83D\\uDE00`` escapes) into one character."""
    if not any("\ud800" <= ch <= "\udfff" for ch in s):
        return s
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _split_key_value(line: str) -> tuple[str, str]:
    """Find key and value of one logical line (Java's ``Properties.load0``)."""
    limit = len(line)
    key_len = 0
    value_start = limit
    has_sep = False
    preceding_backslash = False
    while key_len < limit:
        c = line[key_len]
        if (c == "=" or c == ":") and not preceding_backslash:
            value_start = key_len + 1
            has_sep = True
            break
        if c in _WHITESPACE and not preceding_backslash:
            value_start = key_len + 1
            break
        preceding_backslash = (not preceding_backslash) if c == "\\" else False
        key_len += 1
    while value_start < limit:
        c = line[value_start]
        if c not in _WHITESPACE:
            if not has_sep and (c == "=" or c == ":"):
                has_sep = True
            else:
                break
        value_start += 1
    return _load_convert(line[:key_len]), _load_convert(line[value_start:])


def parse_properties(text: str) -> dict[str, str]:
    """Parse the text of a ``.properties`` file into a dict (later keys win)."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_key_value(line)
        props[key] = value
    return props


def load_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``.properties`` file (UTF-8, falling back to ISO-8859-1 as Java reads it)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
    return parse_properties(text)


def _save_convert(s: str, *, escape_space: bool) -> str:
    """Escape a key (``escape_space=True``) or a value (Java's ``Properties.saveConvert``)."""
    out: list[str] = []
    for index, ch in enumerate(s):
        code = ord(ch)
        if ch == " ":
            out.append("\\ " if index == 0 or escape_space else " ")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif ch in "\\=:#!":
            out.append("\\" + ch)
        elif 0x20 <= code <= 0x7E:
            out.append(ch)
        elif code > 0xFFFF:
            # Java strings are UTF-16: write the surrogate pair.
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{code:04X}")
    return "".join(out)


def _comment_lines(comment: str) -> list[str]:
    """Java's ``Properties.writeComments``: one ``#`` line per line of the comment."""
    lines = []
    for line in comment.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        escaped = "".join(
            ch if 0x20 <= ord(ch) <= 0x7E or ch == "\t" else f"\\u{ord(ch):04X}" for ch in line
        )
        if escaped.startswith(("#", "!")):
            lines.append(escaped)
        else:
            lines.append("#" + escaped)
    return lines


def _java_date(now: float | None = None) -> str:
    """``new Date().toString()``: ``Tue Jan 02 12:34:56 UTC 2024`` (local time zone)."""
    t = time.localtime(now)
    return time.strftime("%a %b %d %H:%M:%S ", t) + (t.tm_zone or "UTC") + time.strftime(" %Y", t)


def dump_properties(
    props: Mapping[str, str],
    comment: str | None = None,
    *,
    date: bool = False,
    sort_keys: bool = True,
) -> str:
    """Render ``props`` as ``.properties`` text (ASCII, ``\\n`` line ends).

    ``comment`` becomes ``#`` lines at the top (``""`` gives a lone ``#`` as Java writes for an
    empty comment); ``date=True`` adds Java's ``#<date>`` line. Keys are sorted by default, as
    ``Properties.store`` does since Java 18.
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(_comment_lines(comment))
    if date:
        lines.append("#" + _java_date())
    keys = sorted(props) if sort_keys else list(props)
    for key in keys:
        value = props[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"properties keys and values must be str, got {key!r}={value!r}")
        lines.append(
            _save_convert(key, escape_space=True) + "=" + _save_convert(value, escape_space=False)
        )
    return "".join(line + "\n" for line in lines)


def store_properties(
    path: str | os.PathLike[str],
    props: Mapping[str, str],
    comment: str | None = None,
    *,
    date: bool = False,
) -> None:
    """Write ``props`` to ``path`` durably (temp file, fsync, rename, fsync dir)."""
    atomic_write(path, dump_properties(props, comment, date=date).encode("ascii"))
