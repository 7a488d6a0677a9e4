"""One error family for everything a user can get wrong; the CLI prints these without a traceback."""


class GenasError(Exception):
    """A problem the user can fix. The message says what to do."""


class TrainingDiverged(GenasError):
    """The loss became NaN or infinite; the trial is recorded as failed."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first message line (its type name when it has none), for one-line errors."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:limit] if limit else line
