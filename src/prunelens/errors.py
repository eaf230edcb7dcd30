"""The errors a user can cause, each ending as one line on the command line; nothing heavy imported."""


class DataError(ValueError):
    """Bad input: the message names the file, the line and the problem."""


class LayoutError(ValueError):
    """An example cannot be laid out for this model (empty reasoning, empty answer, too long)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to install or which path is missing."""


class RunError(RuntimeError):
    """A run directory is missing a table or was made with other settings."""


# What ends as one line on the command line (and comes back from a Ray worker as that line); any
# other exception is a bug and keeps its traceback.
USER_ERRORS = (DataError, LayoutError, ModelLoadError, RunError, ValueError, FileNotFoundError)
