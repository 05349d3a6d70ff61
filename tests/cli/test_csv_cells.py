"""A cell a spreadsheet would run as a formula is written as text: a leading ``'``, as OWASP recommends."""

from __future__ import annotations

import pytest

from cli.csv_cells import neutralise


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])  # OWASP's list, written out
def test_a_cell_starting_a_formula_gets_a_quote(start: str) -> None:
    formula = f'{start}HYPERLINK("http://x","y")'
    assert neutralise(formula) == f"'{formula}"
    assert neutralise(start) == f"'{start}"


@pytest.mark.parametrize(
    "harmless",
    [
        "",
        "0b6c3e52-6b0a-4bd4-8a70-4c0ec2f6a9b1",
        "IMS_JOB_FAILED",
        "tags applied (2); shared with 0123 (pending)",
        "a=b",  # only the first character counts
        "'=1+2",  # already quoted
    ],
)
def test_harmless_strings_are_left_alone(harmless: str) -> None:
    assert neutralise(harmless) == harmless


@pytest.mark.parametrize("number", [0, 7, -3, 2.5, -0.5])
def test_numbers_imsrep_writes_itself_are_left_alone(number: float) -> None:
    assert neutralise(number) == number and type(neutralise(number)) is type(number)
