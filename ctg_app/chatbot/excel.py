"""The Excel download: a result frame written to .xlsx bytes with openpyxl."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def to_excel_bytes(df: pd.DataFrame, columns: Sequence[str] | None = None, sheet_name: str = "Results") -> bytes:
    """``df`` (only ``columns``, in that order, when given) as an .xlsx workbook."""
    if columns is not None:
        df = df.loc[:, list(columns)]
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        df.to_excel(writer, index=False, sheet_name=sheet_name)
    return buffer.getvalue()
