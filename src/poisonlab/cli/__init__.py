"""The ``poisonlab`` command line: thin wrappers over the library.

Every subcommand lives in its own module with a ``register(subparsers)`` function. User errors
(:class:`~poisonlab.errors.PoisonlabError` and bad arguments) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from poisonlab import __version__
from poisonlab.cli import attack, data, detect, reproduce, train, validate
from poisonlab.errors import PoisonlabError
from poisonlab.parallel import keep_freed_memory

# Order is the order of ``poisonlab --help``.
COMMANDS = (data, train, attack, detect, validate, reproduce)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text stays behind ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poisonlab", description="Data-poisoning attacks and filtering defenses for "
                     "image classifiers, with numbers you can check.")
    parser.add_argument("--version", action="version", version=f"poisonlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``poisonlab`` program. Without ``argv`` (the console script, ``python -m poisonlab.cli``) the
    process is ours, so glibc is told to keep freed memory (:func:`poisonlab.parallel.keep_freed_memory`);
    a caller passing ``argv`` keeps its allocator as it is."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:
        keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except PoisonlabError as exc:
        print(f"poisonlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poisonlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
