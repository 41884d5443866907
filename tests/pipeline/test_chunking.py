import pytest

from service.pipeline.chunking import plan_chunks
from service.pipeline.errors import LineTooLarge, SubmissionError

GROQ_MAX_LINES = 50_000
GROQ_MAX_BYTES = 100 * 1024 * 1024


def test_no_lines_no_chunks() -> None:
    assert plan_chunks([], max_lines=10, max_bytes=100) == []


def test_exactly_max_lines_is_one_chunk() -> None:
    chunks = plan_chunks([200] * GROQ_MAX_LINES, max_lines=GROQ_MAX_LINES, max_bytes=GROQ_MAX_BYTES)
    assert len(chunks) == GROQ_MAX_LINES
    assert set(chunks) == {0}


def test_one_more_than_max_lines_is_two_chunks() -> None:
    chunks = plan_chunks([200] * (GROQ_MAX_LINES + 1), max_lines=GROQ_MAX_LINES, max_bytes=GROQ_MAX_BYTES)
    assert chunks[:GROQ_MAX_LINES] == [0] * GROQ_MAX_LINES
    assert chunks[GROQ_MAX_LINES:] == [1]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([40, 60], [0, 0]),  # exactly at the byte cap
        ([40, 61], [0, 1]),  # one byte over
        ([100, 1, 99, 1], [0, 1, 1, 2]),
        ([30, 30, 30, 30], [0, 0, 0, 1]),
        ([100, 100, 100], [0, 1, 2]),
    ],
)
def test_byte_cap(sizes: list[int], expected: list[int]) -> None:
    assert plan_chunks(sizes, max_lines=1000, max_bytes=100) == expected


def test_both_caps_apply() -> None:
    assert plan_chunks([10] * 7, max_lines=3, max_bytes=25) == [0, 0, 1, 1, 2, 2, 3]


def test_chunks_respect_caps_and_keep_order() -> None:
    sizes = [(i * 37) % 90 + 1 for i in range(500)]
    chunks = plan_chunks(sizes, max_lines=17, max_bytes=400)
    assert chunks == sorted(chunks)
    assert chunks[0] == 0
    for chunk in set(chunks):
        members = [size for size, c in zip(sizes, chunks, strict=True) if c == chunk]
        assert 0 < len(members) <= 17
        assert sum(members) <= 400


def test_accepts_any_iterable() -> None:
    assert plan_chunks(iter([5, 5, 5]), max_lines=2, max_bytes=100) == [0, 0, 1]


def test_line_larger_than_cap_is_a_submission_error() -> None:
    with pytest.raises(LineTooLarge) as raised:
        plan_chunks([10, 101, 10], max_lines=10, max_bytes=100)
    assert isinstance(raised.value, SubmissionError)
    assert raised.value.line_index == 1
    assert "line 1" in raised.value.message


def test_line_too_large_names_the_custom_id_when_given() -> None:
    with pytest.raises(LineTooLarge, match="custom_id 'pr-2'"):
        plan_chunks([10, 101], max_lines=10, max_bytes=100, custom_ids=["pr-1", "pr-2"])


@pytest.mark.parametrize(("max_lines", "max_bytes"), [(0, 100), (10, 0), (-1, -1)])
def test_limits_must_be_positive(max_lines: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_chunks([1], max_lines=max_lines, max_bytes=max_bytes)
