"""The project's user-error type: what a user can fix (a bad file, value, id or path).

The CLI reports a `UserError` as one line with exit status 2; anything else is a bug (exit 1).
Errors of the core that are the user's to fix subclass it (ConfigError, ArtifactError, ...); they
also subclass ValueError where callers already catch that.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2  # a UserError or OSError, reported as one line
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM after saving what there was (128 + SIGINT, as shells report it)


class UserError(Exception):
    """An error caused by the user's input: reported as one line, exit status 2."""
