"""Report text accumulation: paragraphs (optionally hard-wrapped) and where each finding statement lies."""

from __future__ import annotations

import re


class ReportDoc:
    """Accumulates the report text and where each finding item's statement lies in it."""

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._len = 0
        self.spans: dict[int, tuple[int, int]] = {}  # item index → (start, end)

    def line(self, text: str = "") -> None:
        self.para([(text, None)])

    def para(self, pieces: list[tuple[str, int | None]], width: int | None = None, indent: str = "") -> None:
        """One paragraph from pieces (text, item index or None), optionally hard-wrapped with ``indent``."""
        text, ranges, pos = "", [], 0
        for piece, tag in pieces:
            if tag is not None:
                ranges.append((tag, pos, pos + len(piece)))
            text += piece
            pos += len(piece)
        if width:
            text, where = hard_wrap(text, width, indent)
            ranges = [(tag, where[a], where[b - 1] + 1) for tag, a, b in ranges]
        for tag, a, b in ranges:
            if tag in self.spans:
                raise RuntimeError(f"finding item {tag} written twice in the findings")
            self.spans[tag] = (self._len + a, self._len + b)
        self._chunks.append(text + "\n")
        self._len += len(text) + 1

    @property
    def text(self) -> str:
        return "".join(self._chunks)


def hard_wrap(text: str, width: int, indent: str = "") -> tuple[str, list[int]]:
    """Greedy hard wrap at ``width`` columns; returns the text and, per input index, its output index."""
    out: list[str] = []
    where = [0] * (len(text) + 1)
    n = col = 0
    for m in re.finditer(r"(\s*)(\S+)", text):
        gap, word = m.group(1), m.group(2)
        if col > len(indent) and col + len(gap) + len(word) > width:
            for k in range(m.start(1), m.end(1)):
                where[k] = n
            out.append("\n" + indent)
            n += 1 + len(indent)
            col = len(indent)
        else:
            for k in range(m.start(1), m.end(1)):
                where[k] = n + (k - m.start(1))
            out.append(gap)
            n += len(gap)
            col += len(gap)
        for k in range(m.start(2), m.end(2)):
            where[k] = n + (k - m.start(2))
        out.append(word)
        n += len(word)
        col += len(word)
    where[len(text)] = n
    return "".join(out), where
