"""One error family for everything a user can get wrong; the CLI prints these without a traceback."""


class GenasError(Exception):
    """A problem the user can fix. The message says what to do."""


class TrainingDiverged(GenasError):
    """The loss became NaN or infinite; the trial is recorded as failed."""
