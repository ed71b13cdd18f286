"""The one error type that reaches the user.

Library code raises `UserError` (or a subclass) for anything the user can fix: a bad
list file, a missing image, a wrong flag value. The scripts' `main` catches it, prints
`str(error)` as one line and exits with `EXIT_BAD_INPUT`. Anything else is a bug and
keeps its traceback.
"""

EXIT_OK = 0
EXIT_SOME_FAILED = 1  # a batch where some items failed and the rest succeeded
EXIT_BAD_INPUT = 2  # bad usage or bad input: nothing useful was done
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT), the shell's 128 + 2


class UserError(Exception):
    """An error caused by input, reported as `path:line: message` on one line.

    `details` are one-line messages naming each of several problems found at once (every
    broken image of a list); `main` prints them, one a line, before the error's own line,
    so that one run shows the user everything to fix.
    """

    def __init__(self, message, path=None, line=None, details=()):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.details = tuple(" ".join(str(d).split()) for d in details)

    def __str__(self):
        where = self.path or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = " ".join(str(self.message).split())  # always one line
        return f"{where}: {text}" if where else text


def file_error(error, path, what="file"):
    """The `UserError` for an `OSError` met opening or reading `path`, a `what` ("list file").

    A folder where a file was expected, a path through a file, a file without read
    permission: all are the user's to fix, so none may reach them as a traceback.
    """
    if isinstance(error, FileNotFoundError):
        return UserError(f"{what} not found", path)
    if isinstance(error, IsADirectoryError):
        return UserError(f"is a folder, not a {what}", path)
    return UserError(f"cannot read the {what}: {error.strerror or error}", path)
