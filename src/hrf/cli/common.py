"""Argument types and output-directory checks shared by the subcommands."""

from __future__ import annotations

import argparse

from hrf.training.run_dir import writable_dir  # noqa: F401  (the subcommands' output-directory check)


def _int_at_least(minimum: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} {words}")
        return value

    return parse


positive_int = _int_at_least(1, "must be at least 1")  # argparse type: an integer ≥ 1
nonneg_int = _int_at_least(0, "must not be negative")  # argparse type: an integer ≥ 0


def add_run_options(parser, set_help: str) -> None:
    """The options every training command shares: dotted config overrides and quiet mode."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
