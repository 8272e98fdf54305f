"""Progress for long commands: an overall bar in a terminal, plain lines anywhere else.

In a terminal the run's stages fill one bar (done / total, elapsed, ETA) and every status line is printed
above it; the workers' per-epoch lines are left out, since they would break the bar. Redirected to a
file or a pipe, there is no bar and no carriage return: a line per finished stage (which carries its own
``[k/N stages, ETA]``) and per epoch.
"""

from __future__ import annotations

import sys
from typing import IO

from tqdm.auto import tqdm


class BarProgress:
    """An owner of at most one tqdm bar (``self.bar``), closed on :meth:`close` or leaving a ``with``."""

    bar: tqdm | None = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StageProgress(BarProgress):
    """The log and progress hooks of :func:`poisonlab.experiment.run_experiment` for the CLI.

    Parameters
    ----------
    quiet : bool
        Nothing at all.
    stream : file, optional
        Where to write (default ``sys.stderr``).
    terminal : bool, optional
        Draw a bar (default: whether ``stream`` is a terminal).
    """

    def __init__(self, *, quiet: bool = False, stream: IO[str] | None = None, terminal: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.terminal = (not quiet) and (self.stream.isatty() if terminal is None else terminal)
        self.bar: tqdm | None = None

    @property
    def epoch_lines(self) -> bool:
        """Whether training workers should print a line per epoch."""
        return not (self.quiet or self.terminal)

    def log(self, message: str) -> None:
        if self.quiet:
            return
        line = f"poisonlab: {message}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def update(self, done: int, total: int) -> None:
        if not self.terminal:
            return
        if self.bar is None:
            self.bar = tqdm(total=total, desc="poisonlab", unit="stage", file=self.stream, dynamic_ncols=True,
                            bar_format="{desc}: {n}/{total} stages |{bar}| {elapsed} elapsed, ETA {remaining}")
        self.bar.total = total
        self.bar.update(done - self.bar.n)

