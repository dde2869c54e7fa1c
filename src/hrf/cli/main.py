"""Entry point of the ``hrf`` command: dispatches to the subcommand modules, turns user errors into one line.

Step-index convention for every command: k counts denoising steps already taken; k = 0 is pure noise and
k = T the clean image (the paper's §5.3 convention, e.g. windows [(3,7),(18,22),(28,32)]).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hrf.errors import HrfError

# Subcommand modules under hrf.cli, in the order `hrf --help` lists them.
COMMANDS = ("sample", "train", "pretrain", "tilt", "evaluate", "frontier", "inject", "transition", "demo", "ablate")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line with exit code 2 (argparse's own code)."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hrf",
        description="RL fine-tuning of diffusion models without mode collapse: DDPO_IS, HRF, HRF-D. "
        "Step index k: 0 = pure noise, T = clean image.",
    )
    from hrf import __version__

    parser.add_argument("--version", action="version", version=f"hrf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"hrf.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``hrf`` with ``argv``; returns the exit code (2 for user errors, with one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HrfError as exc:
        print(f"hrf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hrf {args.command}: interrupted", file=sys.stderr)
        return 130
