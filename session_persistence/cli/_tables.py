"""Tables for people whose first column is an id: ids are never cut, nothing is dropped.

A table that fits the terminal gets one column per field, nothing wrapped. One that does not
fit (``ls`` at 80 columns, a backup list at 60) keeps the id column and folds every other field
into a second column as ``field value`` pairs, wrapped at spaces. Either way a ULID stays whole on
one line at 60 columns or more, and a longer imported id (up to 128 characters) is folded onto
further lines, never shortened with an ellipsis. Copying an id from the screen into ``show`` or
``backup restore`` therefore always works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "id_table"]

_GAP = 2  # between two columns: a table without a box pads each cell by one on either side
_ULID_LENGTH = 26
_MIN_DETAILS = 20  # the narrowest second column worth giving the other fields


@dataclass(frozen=True, slots=True)
class Column:
    """A column of :func:`id_table`: its header and alignment in the wide layout."""

    header: str
    justify: Literal["left", "right"] = "left"


def id_table(
    title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> Table:
    """A table of ``rows`` (plain text; the first cell of each is an id) for ``width`` columns.

    Args:
        title: Printed above the table (plain text), or ``None``.
        columns: One per cell of a row, the id's first.
        rows: The cells, as plain text (no markup is interpreted).
        width: The width of the terminal.
    """
    natural = [
        max([cell_len(column.header), *(cell_len(row[i]) for row in rows)])
        for i, column in enumerate(columns)
    ]
    fits = sum(natural) + _GAP * (len(columns) - 1) <= width
    table = Table(
        title=None if title is None else Text(title),
        title_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    if fits:
        for column in columns:
            table.add_column(column.header, justify=column.justify, no_wrap=True)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        return table
    id_width = min(natural[0], max(_ULID_LENGTH, width - _GAP - _MIN_DETAILS))
    details_width = max(width - id_width - _GAP, 1)
    table.add_column(columns[0].header, width=id_width, overflow="fold")
    table.add_column("DETAILS", width=details_width, overflow="fold")
    for row in rows:
        pairs = [
            f"{column.header.lower()} {cell}"
            for column, cell in zip(columns[1:], row[1:], strict=True)
            if cell
        ]
        table.add_row(Text(row[0]), Text("\n".join(_pack(pairs, details_width))))
    return table


def _pack(pairs: Sequence[str], width: int) -> list[str]:
    """Join ``pairs`` with ``; `` into lines of at most ``width``, never splitting a pair.

    A pair longer than a whole line gets a line of its own (the table folds it).
    """
    lines: list[str] = []
    for pair in pairs:
        if lines and cell_len(lines[-1]) + 2 + cell_len(pair) <= width:
            lines[-1] += "; " + pair
        else:
            lines.append(pair)
    return lines
