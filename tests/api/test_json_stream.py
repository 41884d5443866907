"""The streaming JSON reader: every event reaches the builder as it is parsed, whatever the chunking, and an
unpaired surrogate escape is caught wherever the chunk boundaries fall (the C parser would turn some into "?")."""

from __future__ import annotations

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
