"""Errors that reach a user: a title for a dialog and a message that says what was wrong."""


class PachtrayError(Exception):
    """An error with a short title and a message meant for the user."""

    def __init__(self, message: str, title: str = "Pachtray"):
        super().__init__(message)
        self.message = message
        self.title = title

    def __str__(self) -> str:
        return self.message


class ApiError(PachtrayError):
    """An error the REST API answers with: HTTP ``status`` and a plain-text ``message``."""

    def __init__(self, status: int, message: str, title: str = ""):
        super().__init__(message, title or "Request failed")
        self.status = status
