"""The one exception every templating failure surfaces as."""

from __future__ import annotations


class TemplateError(Exception):
    """A template failed to parse or render; non-retryable, `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
