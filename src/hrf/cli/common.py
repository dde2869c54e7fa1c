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


def add_device_option(parser, what: str = "the model, rewards and embedders") -> None:
    """``--device``: where ``what`` run (hrf.models.resolve_device: CUDA when there is one, else the CPU)."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda|cuda:N",
        help=f"where {what} run (default auto: CUDA when available, else the CPU)",
    )


def add_noise_option(parser) -> None:
    """``--noise``: the noise scheme of hrf.sampling.noise (named here without importing torch)."""
    parser.add_argument(
        "--noise",
        choices=("per_sample", "sequential"),
        default="per_sample",
        help="per_sample (default): image i of a seed is the same whatever the batch size and device; "
        "sequential: one generator drawn batch after batch, as hrf did before (images depend on --batch-size)",
    )
