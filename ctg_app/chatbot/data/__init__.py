"""Data files shipped with the chatbot (``training.toml``: the question/SQL pairs it is trained on)."""
