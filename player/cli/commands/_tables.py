"""Tables that fit the terminal (80 columns when piped) and never cut a number.

A table is tried in layouts, widest first (e.g. one table with every column, then the same
columns in two tables); the first whose tables all fit the console's width is printed.
When none fits, each row becomes a line of `header value` pairs, wrapped at spaces (never
inside a number).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    right: bool = False


def _table(title: str | None, columns: Sequence[Column], rows: Sequence[dict]):
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for c in columns:
        t.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for r in rows:
        t.add_row(*[str(r.get(c.key, "")) for c in columns])
    return t


def table_width(console, columns: Sequence[Column], rows: Sequence[dict]) -> int:
    """The width the table needs with no cell wrapped or cut."""
    from rich.measure import Measurement

    wide = console.options.update_width(1 << 16)
    return Measurement.get(console, wide, _table(None, columns, rows)).maximum


def print_table(console, title: str, layouts: Sequence[Sequence[Sequence[Column]]], rows: Sequence[dict]) -> None:
    """Print `rows` in the first layout whose every table fits; else as wrapped blocks."""
    width = console.width
    for layout in layouts:
        if all(table_width(console, cols, rows) <= width for cols in layout):
            for i, cols in enumerate(layout):
                console.print(_table(title if i == 0 else None, cols, rows))
            return
    from rich.text import Text

    columns = list(dict((c.key, c) for layout in layouts for cols in layout for c in cols).values())
    console.print(Text(title, style="italic"), justify="center")
    first, rest = columns[0], columns[1:]
    for r in rows:
        pairs = [f"{c.header} {r.get(c.key, '')}".strip() for c in rest if str(r.get(c.key, ""))]
        line = Text(str(r.get(first.key, "")), style="bold")
        for p in pairs:
            line.append("  ")
            line.append(p)
        console.print(line)
