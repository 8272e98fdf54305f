"""The ``poisonlab`` command line: thin wrappers over the library.

Every subcommand lives in its own module with a ``register(subparsers)`` function. User errors
(:class:`~poisonlab.errors.PoisonlabError`, bad arguments, files that cannot be read or written) print
one line ``poisonlab: error: ...`` and exit with code 2; warnings (:class:`PoisonlabWarning`) print one
line ``poisonlab: warning: ...``. Ctrl-C exits 130 and SIGTERM 143, both after keeping finished work.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Any, Sequence

from poisonlab import __version__
from poisonlab.cli import attack, data, detect, reproduce, sweep, train, validate
from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.parallel import keep_freed_memory

# Order is the order of ``poisonlab --help``.
COMMANDS = (data, train, attack, detect, validate, reproduce, sweep)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text stays behind ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"poisonlab: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poisonlab", description="Data-poisoning attacks and filtering defenses for "
                     "image classifiers, with numbers you can check.")
    parser.add_argument("--version", action="version", version=f"poisonlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it stops as it does on Ctrl-C (finished work kept)."""


def _stop(signum: int, frame: Any) -> None:
    """Ctrl-C or SIGTERM: stop once, keeping what finished; another signal while stopping changes nothing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    kind = "warning" if issubclass(category, PoisonlabWarning) else f"warning ({category.__name__})"
    print(f"poisonlab: {kind}: {str(message).splitlines()[0] if str(message) else category.__name__}",
          file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``poisonlab`` program. Without ``argv`` (the console script, ``python -m poisonlab.cli``) the
    process is ours, so glibc is told to keep freed memory (:func:`poisonlab.parallel.keep_freed_memory`)
    and SIGTERM stops it like Ctrl-C; a caller passing ``argv`` keeps its allocator and handlers."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:
        keep_freed_memory()
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.simplefilter("once", PoisonlabWarning)
        try:
            return int(args.func(args) or 0)
        except PoisonlabError as exc:
            print(f"poisonlab: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            # the reader went away (``poisonlab data info mnist | head``): not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except OSError as exc:  # a file we could not read or write, found only while working
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"poisonlab: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return 2
        except Terminated:
            print("poisonlab: terminated", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("poisonlab: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
