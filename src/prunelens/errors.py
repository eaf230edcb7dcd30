"""The errors a user can cause, each ending as one line on the command line; nothing heavy imported.

Any other exception (a bare ``ValueError`` from inside the code, a ``KeyError``) is a bug and keeps
its traceback.
"""


class SettingsError(ValueError):
    """A setting or argument is out of range, unknown, or does not fit the others."""


class DataError(ValueError):
    """Bad input: the message names the file, the line and the problem."""


class ExampleError(ValueError):
    """One example cannot be done (a layout that does not fit, a keep ratio its run never reached);
    stages with ``skip_bad`` leave such examples out and report them."""


class LayoutError(ExampleError):
    """An example cannot be laid out for this model (empty reasoning, empty answer, too long)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to install or which path is missing."""


class RunError(RuntimeError):
    """A run directory is missing a table or was made with other settings."""


# What ends as one line on the command line (and comes back from a Ray worker as that line).
USER_ERRORS = (SettingsError, DataError, ExampleError, ModelLoadError, RunError)
