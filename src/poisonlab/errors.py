"""The one exception type that the CLI turns into a single error line and exit code 2."""


class PoisonlabError(Exception):
    """A problem with the user's input or files, reported as one line without a traceback."""
