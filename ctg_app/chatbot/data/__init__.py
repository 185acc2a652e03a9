"""Where the chat's data comes from: the data sources (``source``), the sample database (``sample``) and the
training file (``training.toml``, loaded by ``training``; ``training_check`` runs it against a source)."""
