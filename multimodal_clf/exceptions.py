"""Errors and warnings raised by multimodal-clf."""

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

__all__ = [
    "CheckpointError",
    "ImageLoadError",
    "NonFiniteLossError",
    "NotFittedError",
    "TruncationWarning",
]


class NotFittedError(_SklearnNotFittedError):
    """Raised when a method that needs a fitted estimator is called before `fit`.

    It subclasses scikit-learn's ``NotFittedError``, so code that catches that
    class also catches this one.
    """


class ImageLoadError(ValueError):
    """Raised when one image cannot be read or converted.

    Parameters
    ----------
    reason : str
        What went wrong, in a few words.
    path : str or None, default=None
        The file the image came from, when it came from a file.
    """

    def __init__(self, reason, path=None):
        self.reason = reason
        self.path = None if path is None else str(path)
        message = reason if path is None else f"{reason}: {path}"
        super().__init__(message)


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class CheckpointError(ValueError):
    """Raised when a saved model or training checkpoint cannot be loaded."""


class TruncationWarning(UserWarning):
    """Warned once per call when texts are cut to the backbone's token limit."""
