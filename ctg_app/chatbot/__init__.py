"""The CTG chatbot as a pipeline: question → answer (``answer/``) → SQL policy (``policy``) → data source (``data/``)
→ presentation (``present/``) → conversation (``conversation``), each step recorded by ``operations``.

Nothing in this package imports Streamlit or contacts a network at import time; the pages live in ``ctg_app/ui/``.
"""
