"""Progress shown while training, computing features and comparing models.

On a terminal or in a notebook a tqdm bar is drawn and redrawn in place. Where
stderr is a file or a pipe (a batch job, CI, ``2> log``) redraws would each
become a line of the log, so the bar is not drawn there: a task prints one
line when it ends instead.
"""

import sys
import time

from tqdm.auto import tqdm

__all__ = ["Progress", "interactive"]


def interactive(stream=None):
    """True when progress bars can be redrawn in place on ``stream``.

    That is in a Jupyter notebook (where ``tqdm.auto`` draws widgets) or when
    ``stream`` (default ``sys.stderr``) is a terminal.
    """
    notebook = sys.modules.get("tqdm.notebook")
    if notebook is not None and issubclass(tqdm, notebook.tqdm):
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """A tqdm bar where it can be redrawn, one summary line where it cannot.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over; or call :meth:`update` by hand.
    desc : str
        What is in progress, for example ``"epoch 2/5"``.
    total : int, optional
        Number of steps, when ``iterable`` has no length.
    unit : str, default="it"
    enabled : bool, default=True
        False shows nothing at all.
    """

    def __init__(self, iterable=None, *, desc, total=None, unit="it", enabled=True):
        self.desc = desc
        self.enabled = enabled
        self.live = enabled and interactive()
        self.bar = tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            leave=False,
            disable=not self.live,
        )
        self.start = time.perf_counter()

    def __iter__(self):
        return iter(self.bar)

    def update(self, n=1):
        self.bar.update(n)

    def set_postfix(self, text):
        """Show ``text`` after the bar (live bars only)."""
        self.bar.set_postfix_str(text)

    def close(self, summary=None):
        """Remove the bar, then print ``"<desc>: <summary> (<seconds> s)"``.

        Without ``summary`` nothing is printed.
        """
        self.bar.close()
        if self.enabled and summary is not None:
            seconds = time.perf_counter() - self.start
            tqdm.write(f"{self.desc}: {summary} ({seconds:.1f} s)", file=sys.stderr)
