"""poisonlab: data-poisoning attacks and filtering defenses for image classifiers."""

__version__ = "0.1.0"

from poisonlab.errors import PoisonlabError  # noqa: E402

__all__ = ["PoisonlabError", "__version__"]
