"""The one error type users see: a one-line message naming the bad value and what is allowed."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input (a config value, a path, a dataset). Its message is one line, shown as is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def brief(exc: BaseException | str, limit: int = 160) -> str:
    """An exception (or text) on one line, at most ``limit`` characters: for the tail of an error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
