"""The chat's result table in Streamlit: one ``st.column_config`` entry per column, labelled and formatted by the
column's meaning (:mod:`ctg_app.chatbot.present.formatting` decides the kind and the format)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ctg_app.chatbot.present.formatting import (DATE, MONTH_TABLE_FORMAT, column_kinds, human_label, is_month,
                                                table_format)


def column_config(df: pd.DataFrame) -> dict[str, Any]:
    """``st.column_config`` entries for ``df`` as the query returned it (before ``display_frame``): human labels, and
    number formats by meaning; month numbers are shown as month names (``display_frame`` made them dates)."""
    config: dict[str, Any] = {}
    for column, kind in column_kinds(df).items():
        label = human_label(column)
        number_format = table_format(kind, df[column])
        if kind == DATE:
            config[column] = st.column_config.DateColumn(label, format=number_format)
        elif is_month(column, kind):
            config[column] = st.column_config.DateColumn(label, format=MONTH_TABLE_FORMAT)
        elif number_format is not None:
            config[column] = st.column_config.NumberColumn(label, format=number_format)
        else:
            config[column] = st.column_config.TextColumn(label)
    return config
