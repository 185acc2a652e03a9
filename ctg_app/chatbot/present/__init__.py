"""Presenting a result: value formatting, charts, the Excel download and the one summariser."""
