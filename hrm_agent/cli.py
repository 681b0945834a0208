"""The ``hrm`` command: ``hrm data|train|eval|watch|bench|frontier|analyze ...``.

Each subcommand lives in its own module and is imported only when it runs, so ``hrm --help``
and ``hrm data`` start without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from hrm_agent.distribution import DISTRIBUTION, distribution_version

# name -> (module, help). A module exposes add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("hrm_agent.commands.data", "generate puzzle files (CSV) on all cores"),
    "train": ("hrm_agent.train", "train an HRM with deep supervision and Q-learning halting"),
    "eval": ("hrm_agent.evaluate", "evaluate a checkpoint on a puzzle file or the test bank"),
    "watch": ("hrm_agent.commands.watch", "watch the model solve puzzles in a pygame window"),
    "bench": ("hrm_agent.commands.bench", "run a benchmark script from benchmarks/"),
    "frontier": ("hrm_agent.frontier", "accuracy-compute frontier of halting policies"),
    "analyze": ("hrm_agent.analysis", "figures of the reasoning dynamics (convergence, PCA, PR)"),
}


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers >= ``minimum``.

    argparse puts the flag's name in front of the message (``argument --seed: must be an
    integer >= 0, got -1``), which a check after parsing or an error from deep inside (numpy's
    "expected non-negative integer") would not.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


seed_type = int_at_least(0)
"""``--seed``: numpy's and gymnasium's seeds are non-negative."""

count_type = int_at_least(1)
"""Counts that must be positive: ``--workers``, ``--episodes``."""


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to fill its arguments."""
    parser = argparse.ArgumentParser(
        prog="hrm", description="Hierarchical Reasoning Model: train, evaluate, watch."
    )
    parser.add_argument(
        "--version", action="version", version=f"{DISTRIBUTION} {distribution_version()}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hrm`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        print(
            f"hrm: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_load(args.command).run(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as err:
        # Bad input or a missing optional package is the user's to fix: say what is wrong,
        # without a traceback.
        print(f"hrm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hrm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
