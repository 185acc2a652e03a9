"""The offline answering engine: question → constraints (slots) → SQL that honours all of them, or a decline."""

from ctg_app.chatbot.answering.answer import SqlAnswer

__all__ = ["SqlAnswer"]
