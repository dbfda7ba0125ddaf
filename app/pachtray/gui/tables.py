"""The tables of whole rows the window's tabs show (mounts, kernels, pinned mounts)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QWidget

COLUMN_MAX = 360  # pixels: a 255-character name is cut in the middle, not a table wider than the window


def row_table(columns: tuple[str, ...], parent: QWidget, stretch: int = 0) -> QTableWidget:
    """A read-only table selecting one whole row at a time: columns fit their contents up to
    COLUMN_MAX, the `stretch` column takes the rest."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    header = table.horizontalHeader()
    header.setMaximumSectionSize(COLUMN_MAX)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table
