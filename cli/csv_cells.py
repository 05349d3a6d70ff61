"""Cells of the CSV files imsrep exports, made safe to open in a spreadsheet (CSV formula injection)."""

from __future__ import annotations

# What makes Excel, LibreOffice or Google Sheets run a cell as a formula (OWASP, "CSV Injection"); a tab or a
# carriage return may be dropped first, leaving a formula behind it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """``cell``, shown by a spreadsheet as text: a string that would start a formula gets a leading ``'``.

    Every string, since any may come from a manifest, the API or the cloud (an image ID ``=HYPERLINK(...)``).
    Anything else is a number imsrep wrote itself (a manifest line), left as it is so a spreadsheet still sorts and
    sums it: no formula starts with a digit, and a negative number is a value, not a call.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell
