"""Streamlit page scripts registered by ``ctg_app/app.py`` (a package so that installs include them)."""
