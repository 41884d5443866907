import pytest

from service.pipeline.errors import DuplicateCustomId, InvalidSchema, LineTooLarge, SubmissionError


def test_submission_error_is_a_value_error_with_field() -> None:
    error = SubmissionError("items must not be empty", field="items")
    assert isinstance(error, ValueError)
    assert str(error) == "items must not be empty"
    assert error.message == "items must not be empty"
    assert error.field == "items"


def test_field_is_optional() -> None:
    assert SubmissionError("bad").field is None


@pytest.mark.parametrize(
    "error",
    [
        DuplicateCustomId("pr-1", first_index=0, duplicate_index=3),
        InvalidSchema("output_schema is not valid", field="output_schema"),
        LineTooLarge(line_index=2, size=10, max_bytes=5),
    ],
)
def test_specific_errors_are_submission_errors(error: SubmissionError) -> None:
    assert isinstance(error, SubmissionError)


def test_duplicate_custom_id_names_both_positions() -> None:
    error = DuplicateCustomId("pr-1", first_index=0, duplicate_index=3)
    assert "'pr-1'" in error.message
    assert "items[0]" in error.message
    assert "items[3]" in error.message
    assert error.field == "items[3].custom_id"


@pytest.mark.parametrize(
    ("custom_id", "named"),
    [(None, "line 7"), ("pr-26313", "custom_id 'pr-26313'")],
)
def test_line_too_large_names_the_line(custom_id: str | None, named: str) -> None:
    error = LineTooLarge(line_index=7, size=120, max_bytes=100, custom_id=custom_id)
    assert named in error.message
    assert "120 bytes" in error.message
    assert "100 bytes" in error.message
    assert (error.line_index, error.size, error.max_bytes) == (7, 120, 100)
