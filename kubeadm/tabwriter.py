"""Go's text/tabwriter as kubeadm's tables use it (``kubeadm certs check-expiration``,
``kubeadm token list``): NewWriter(out, minwidth, 4, padding, ' ', 0)."""

from __future__ import annotations


def tabwriter(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """Go text/tabwriter with padchar ' ' and no flags: tab-terminated cells
    are aligned per block of consecutive lines; the last cell is free text.
    ``lines`` is one Flush's worth; the result ends with a newline."""
    cells = [line.split("\t") for line in lines]
    out: list[str] = []

    def write_lines(line0: int, line1: int, widths: list[int]) -> None:
        for row in cells[line0:line1]:
            text = ""
            for j, cell in enumerate(row):
                text += cell
                if j < len(widths) and j < len(row) - 1:
                    text += " " * (widths[j] - len(cell))
            out.append(text)

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write_lines(line0, this, widths)
            line0 = this
            width = minwidth
            while this < line1 and column < len(cells[this]) - 1:
                width = max(width, len(cells[this][column]) + padding)
                this += 1
            fmt(line0, this, widths + [width])
            line0 = this
        write_lines(line0, line1, widths)

    fmt(0, len(cells), [])
    return "\n".join(out) + "\n"
