"""java.util.Properties.load / store semantics of storage.properties."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.properties import (
    PropertiesError,
    dump_properties,
    load_properties,
    parse_properties,
    store_properties,
)


def test_comment_lines_with_hash_and_bang() -> None:
    text = "# a comment\n! another\n   # indented comment\n\t! tab comment\nkey=value\n"
    assert parse_properties(text) == {"key": "value"}


def test_hash_inside_value_is_not_a_comment() -> None:
    assert parse_properties("a=b # not a comment\n") == {"a": "b # not a comment"}


def test_comment_does_not_continue() -> None:
    # A backslash at the end of a comment line does not join the next line into the comment.
    assert parse_properties("# comment \\\nkey=value\n") == {"key": "value"}


def test_separators_equals_colon_whitespace() -> None:
    text = "a=1\nb:2\nc 3\nd\t4\ne\f5\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}


def test_whitespace_around_separator_is_ignored() -> None:
    assert parse_properties("a   =   1\nb :  2\n") == {"a": "1", "b": "2"}


def test_only_first_separator_counts() -> None:
    assert parse_properties("a=b=c\nx:y:z\nurl=http://h:1\n") == {
        "a": "b=c",
        "x": "y:z",
        "url": "http://h:1",
    }


def test_whitespace_then_one_equals_is_a_single_separator() -> None:
    # "key = = v": whitespace, then one '=' is absorbed, the second '=' starts the value.
    assert parse_properties("key = = v\n") == {"key": "= v"}
    assert parse_properties("key  value with = sign\n") == {"key": "value with = sign"}


def test_trailing_whitespace_of_value_is_kept() -> None:
    assert parse_properties("a=1  \n") == {"a": "1  "}


def test_leading_whitespace_of_line_is_dropped() -> None:
    assert parse_properties("   \t a=1\n") == {"a": "1"}


def test_key_without_value() -> None:
    assert parse_properties("lonely\nempty=\nspaced   \n") == {
        "lonely": "",
        "empty": "",
        "spaced": "",
    }


def test_empty_key() -> None:
    assert parse_properties("=value\n") == {"": "value"}
    assert parse_properties(":value\n") == {"": "value"}


def test_escapes_in_values() -> None:
    text = "a=tab\\there\nb=nl\\nx\nc=cr\\rx\nd=ff\\fx\ne=\\u0041\\u00e9\\u20AC\nf=\\q\\z\\\\\n"
    assert parse_properties(text) == {
        "a": "tab\there",
        "b": "nl\nx",
        "c": "cr\rx",
        "d": "ff\fx",
        "e": "Aé€",
        "f": "qz\\",
    }


def test_surrogate_pair_escapes_combine() -> None:
    assert parse_properties("smile=\\uD83D\\uDE00\n") == {"smile": "\U0001F600"}


def test_escaped_separators_and_spaces_in_key() -> None:
    text = "key\\ with\\ spaces=1\nk\\=e\\:y=2\nx\\ y z\n"
    assert parse_properties(text) == {"key with spaces": "1", "k=e:y": "2", "x y": "z"}


def test_escaped_leading_space_in_value() -> None:
    assert parse_properties("a=\\  padded\n") == {"a": "  padded"}


def test_malformed_unicode_escape_raises() -> None:
    with pytest.raises(PropertiesError):
        parse_properties("a=\\u12G4\n")
    with pytest.raises(PropertiesError):
        parse_properties("a=\\u12\n")


def test_line_continuation_drops_leading_whitespace_of_next_line() -> None:
    text = "fruits = apple, banana, \\\n         pear, \\\n\t\tcherry\n"
    assert parse_properties(text) == {"fruits": "apple, banana, pear, cherry"}


def test_continuation_in_key() -> None:
    assert parse_properties("ke\\\n  y=v\n") == {"key": "v"}


def test_even_number_of_backslashes_is_not_a_continuation() -> None:
    assert parse_properties("a=x\\\\\nb=y\n") == {"a": "x\\", "b": "y"}


def test_odd_number_of_backslashes_is_a_continuation() -> None:
    assert parse_properties("a=x\\\\\\\nb=y\n") == {"a": "x\\b=y"}


def test_continuation_at_end_of_file() -> None:
    assert parse_properties("a=x\\") == {"a": "x"}


def test_continuation_then_end_of_input_keeps_an_empty_line() -> None:
    # Java quirk: when the continuation's line terminator is the last character of the input,
    # the (now empty) line is still returned, giving the key "". With \r\n it is not.
    assert parse_properties("a=1\n\\\n") == {"a": "1", "": ""}
    assert parse_properties("a=1\n\\") == {"a": "1", "": ""}
    assert parse_properties("a=1\n\\\r\n") == {"a": "1"}


def test_continuation_line_starting_with_hash_is_content() -> None:
    assert parse_properties("a=x\\\n  #y\n") == {"a": "x#y"}


def test_empty_continuation_line_ends_the_logical_line() -> None:
    assert parse_properties("a=x\\\n\nb=y\n") == {"a": "x", "b": "y"}


def test_line_terminators_cr_lf_crlf() -> None:
    assert parse_properties("a=1\rb=2\r\nc=3\nd=4") == {"a": "1", "b": "2", "c": "3", "d": "4"}
    assert parse_properties("a=x\\\r\n  y\r\nb=2\r\n") == {"a": "xy", "b": "2"}


def test_blank_lines() -> None:
    assert parse_properties("\n\n   \n\t\na=1\n\n") == {"a": "1"}


def test_later_keys_override_earlier() -> None:
    assert parse_properties("a=1\nb=2\na=3\n") == {"a": "3", "b": "2"}


def test_load_properties_reads_utf8_and_latin1(tmp_path: Path) -> None:
    utf8 = tmp_path / "utf8.properties"
    utf8.write_bytes("name=caf\u00e9\n".encode())
    assert load_properties(utf8) == {"name": "café"}
    latin1 = tmp_path / "latin1.properties"
    latin1.write_bytes(b"name=caf\xe9\n")  # how Java's load(InputStream) reads it
    assert load_properties(latin1) == {"name": "café"}


def test_dump_escapes_like_java_store() -> None:
    text = dump_properties({" k e=y": " v a:l#!", "u": "é\x01"})
    assert text == "\\ k\\ e\\=y=\\ v a\\:l\\#\\!\nu=\\u00E9\\u0001\n"


def test_dump_header_and_date() -> None:
    text = dump_properties({"b": "2", "a": "1"}, "", date=True)
    lines = text.splitlines()
    assert lines[0] == "#"
    assert lines[1].startswith("#") and len(lines[1]) > 20
    assert lines[2:] == ["a=1", "b=2"]  # sorted


def test_store_properties_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.properties"
    store_properties(path, {"a b": "c\nd"}, "header")
    assert load_properties(path) == {"a b": "c\nd"}
    assert not (tmp_path / "x.properties.tmp").exists()


# Hypothesis: any dict of strings survives dump -> parse. Surrogates are excluded (not valid
# text; Java would write them as lone \\uXXXX escapes).
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=300)
@given(st.dictionaries(_text, _text, max_size=8))
def test_round_trip_dump_parse(props: dict[str, str]) -> None:
    text = dump_properties(props, "comment\nwith two lines", date=True)
    assert text.isascii()
    assert parse_properties(text) == props


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.text("ab =:#!\\ \t\n\r\fé", max_size=6), st.text("ab =:#!\\ \t\n\r\fé", max_size=6)
    )
)
def test_round_trip_with_special_characters(props: dict[str, str]) -> None:
    assert parse_properties(dump_properties(props)) == props


@given(st.text(max_size=60))
def test_parse_never_crashes_except_on_bad_unicode_escape(text: str) -> None:
    try:
        parse_properties(text)
    except PropertiesError:
        assert "\\u" in text


_JAVA_DUMPER = """
import java.io.*; import java.nio.file.*; import java.util.*;
public class PropsDump {
  static String hex(String s) { StringBuilder b = new StringBuilder();
    for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c)); return b.toString(); }
  public static void main(String[] args) throws Exception {
    for (String f : args) {
      Properties p = new Properties();
      try { p.load(new StringReader(new String(Files.readAllBytes(Paths.get(f)), "UTF-8"))); }
      catch (IllegalArgumentException e) { System.out.println("ERR"); continue; }
      TreeMap<String, String> m = new TreeMap<>();
      for (String k : p.stringPropertyNames()) m.put(k, p.getProperty(k));
      StringBuilder b = new StringBuilder();
      for (Map.Entry<String, String> e : m.entrySet())
        b.append(hex(e.getKey())).append(':').append(hex(e.getValue())).append(',');
      System.out.println(b);
    }
  }
}
"""


def _utf16_hex(s: str) -> str:
    raw = s.encode("utf-16-be", "surrogatepass")
    return "".join(f"{int.from_bytes(raw[i:i + 2], 'big'):04x}" for i in range(0, len(raw), 2))


@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK")
def test_matches_java_properties_load(tmp_path: Path) -> None:
    """Differential test against the real java.util.Properties.load on random texts."""
    (tmp_path / "PropsDump.java").write_text(_JAVA_DUMPER)
    subprocess.run(["javac", "PropsDump.java"], cwd=tmp_path, check=True, timeout=120)
    rng = random.Random(20240101)
    pieces = list("ab=: \t\f\\\n\r#!u0Ae") + [
        "\\u0041", "\\u00", "\\\n", "\\\r\n", " = ", "\u00e9", "\\t"
    ]
    cases = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 25))) for _ in range(1500)]
    files = []
    for i, case in enumerate(cases):
        path = tmp_path / f"case{i}.properties"
        path.write_text(case, encoding="utf-8")
        files.append(str(path))
    out = subprocess.run(
        ["java", "-cp", str(tmp_path), "PropsDump", *files],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.splitlines()
    assert len(out) == len(cases)
    for case, java in zip(cases, out, strict=True):
        try:
            parsed = parse_properties(case)
        except PropertiesError:
            mine = "ERR"
        else:
            items = sorted(parsed.items(), key=lambda kv: kv[0].encode("utf-16-be"))
            mine = "".join(f"{_utf16_hex(k)}:{_utf16_hex(v)}," for k, v in items)
        assert mine == java, f"differs from Java for {case!r}"
