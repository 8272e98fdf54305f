"""The one exception type that the CLI turns into a single error line and exit code 2."""


class PoisonlabError(ValueError):
    """A problem with the user's input, files or parameters, reported as one line without a traceback.

    A ``ValueError``, as scikit-learn tooling (``GridSearchCV``, ``check_estimator``) expects for bad
    parameters.
    """


class PoisonlabWarning(UserWarning):
    """Input that is accepted but probably not what was meant (the CLI prints it as one line, once)."""
