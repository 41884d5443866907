"""The streaming JSON reader: every event reaches the builder as it is parsed, whatever the chunking, and an
unpaired surrogate escape is caught wherever the chunk boundaries fall (the C parser would turn some into "?")."""

from __future__ import annotations

import json
import random
import time

import pytest

from service.api.json_stream import Builder, Feeder, Refused, parse_bytes


def read_in_chunks(data: bytes, size: int) -> Builder:
    builder = Builder(None)
    feeder = Feeder(builder)
    for start in range(0, len(data), size):
        feeder.feed(data[start : start + size])
    feeder.feed(b"", final=True)
    return builder


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_any_chunking_reads_the_same_value(size: int) -> None:
    data = b'{"a": "x\\ud83d\\ude00y \\\\ud800 \\u00e9", "b": [1, 2.5, {"c": null}], "d": "\\\\\\\\"}'
    assert read_in_chunks(data, size).top == {
        "a": "x\U0001f600y \\ud800 \u00e9",
        "b": [1, 2.5, {"c": None}],
        "d": "\\\\",
    }


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (b'{"a": "\\ud800"}', "a"),
        (b'{"a": "x\\udc00y"}', "a"),
        (b'{"a": {"b": ["ok", "\\uDBFF\\u0041"]}}', "a.b[1]"),
        (b'{"a": "\\\\\\ud800"}', "a"),
    ],
    ids=["lone-high-at-end", "lone-low", "high-then-not-low", "after-an-escaped-backslash"],
)
@pytest.mark.parametrize("size", [1, 4, 10_000])
def test_an_unpaired_surrogate_escape_is_refused_naming_its_field(text: bytes, field: str, size: int) -> None:
    with pytest.raises(Refused) as refused:
        read_in_chunks(text, size)
    error = refused.value.error
    assert getattr(error, "field", None) == field and "unpaired surrogate" in str(error)


def test_a_parse_error_leaves_the_path_at_the_bad_value() -> None:
    builder, error = parse_bytes(b'{"items": [{"custom_id": "a", "body": {"temperature": NaN}}]}')
    assert error is not None
    assert builder.value_path() == ["items", 0, "body", "temperature"]


PIECES = ["a", "\\\\", "\\ud83d", "\\ude00", "\\uDBFF", "\\udc00", "\\u0041", "\\n"]


def has_unpaired_surrogate(json_text: bytes) -> bool:
    try:
        json.loads(json_text)["a"].encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@pytest.mark.parametrize("seed", range(40))
def test_unpaired_surrogates_are_found_exactly_whatever_the_mix_and_chunking(seed: int) -> None:
    """Random strings of escapes (pairs, lone halves, escaped backslashes before them) in random chunks: refused
    exactly when the decoded text holds an unpaired surrogate, read whole otherwise."""
    chance = random.Random(seed)
    for _ in range(25):
        text = "".join(chance.choice(PIECES) for _ in range(chance.randint(1, 12)))
        data = b'{"a": "' + text.encode() + b'"}'
        expected_unpaired = has_unpaired_surrogate(data)
        size = chance.choice([1, 2, 3, 5, 7, 13, 64, 10_000])
        try:
            builder = read_in_chunks(data, size)
        except Refused:
            assert expected_unpaired, (text, size)
            continue
        assert not expected_unpaired, (text, size)
        assert builder.top == {"a": json.loads(data)["a"]}


def test_a_long_string_of_escapes_reads_in_linear_time() -> None:
    """A 12 MB string of escaped surrogate pairs in 64 KiB pieces: the C parser read the cut string again from its
    start with every piece (quadratic: 9 s) and the surrogate check took a Python step per pair (200 ns a
    byte); now under half a second on the test machine. Bounded loosely (6x); the values read are checked too."""
    escaped = b'{"a": "' + b"\\ud83d\\ude00" * 1_000_000 + b'"}'
    plain = b'{"a": "' + b"abcdefghijkl" * 1_000_000 + b'"}'
    timings = []
    for data in (plain, escaped):
        started = time.perf_counter()
        builder = read_in_chunks(data, 65_536)
        timings.append(time.perf_counter() - started)
        assert builder.top is not None and len(builder.top["a"]) == (1_000_000 * 12 if data is plain else 1_000_000)
    assert builder.top == {"a": "\U0001f600" * 1_000_000}
    assert timings[1] < 3.0 and timings[0] < 3.0, timings  # were 9 s and 0.4 s
