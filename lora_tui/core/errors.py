"""Errors a user can act on: shown as one sentence, never as a traceback."""


class UserError(Exception):
    """Bad input or an unmet precondition; the message says what and where."""
