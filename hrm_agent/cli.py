"""The ``hrm`` command: ``hrm data|train|eval|watch|bench|frontier|analyze ...``.

Each subcommand lives in its own module and is imported only when it runs, so ``hrm --help``
and ``hrm data`` start without importing torch.

Errors are one line on stderr, ``hrm CMD: ...``, never a traceback (see :data:`EPILOG` for
the exit codes). Output into a pipe that closes early (``hrm eval ... | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from hrm_agent.distribution import DISTRIBUTION, distribution_version

# name -> (module, help). A module exposes add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("hrm_agent.commands.data", "generate puzzle files (CSV) on all cores"),
    "train": (
        "hrm_agent.training.command",
        "train an HRM with deep supervision and Q-learning halting",
    ),
    "eval": ("hrm_agent.evaluate", "evaluate a checkpoint on a puzzle file or the test bank"),
    "watch": ("hrm_agent.commands.watch", "watch the model solve puzzles in a pygame window"),
    "bench": ("hrm_agent.commands.bench", "run a benchmark script from benchmarks/"),
    "frontier": ("hrm_agent.frontier", "accuracy-compute frontier of halting policies"),
    "analyze": ("hrm_agent.analysis", "figures of the reasoning dynamics (convergence, PCA, PR)"),
}


EPILOG = """\
exit codes: 0 done; 1 a failure while running (a write that failed, such as a full disk);
2 bad input found before any work (a flag, a puzzle file, a path that cannot be written);
130 interrupted (Ctrl-C; hrm train: 143 on SIGTERM); 141 stdout closed early (`| head`).
Every error is one line on stderr, "hrm COMMAND: ...". Files are written whole or not at
all: a failed write leaves no partial file and keeps the file that was there before.
"""

#: Exit status of a process whose stdout closed under it, as a shell reports one that
#: SIGPIPE ended (128 + 13).
EXIT_BROKEN_PIPE = 141


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


def _train_out_dir(args: argparse.Namespace) -> None:
    """``hrm train``: the output folder must be one that can be made and written to, checked
    before the data is built and the model trained (the trainer makes it later)."""
    from hrm_env.fileio import check_writable

    out_dir = args.out_dir
    if out_dir is None:
        # The default depends on the task and recipe: ask the trainer's own flag parser.
        config_from_args = getattr(_load("train"), "config_from_args", None)
        if config_from_args is None:
            return
        try:
            out_dir = config_from_args(args).out_dir
        except ValueError:
            return  # bad flags: the command reports them in its own words
    check_writable(out_dir, folder=True)


#: Checks run after parsing and before a command's own ``run``: ``hrm train`` makes its
#: folder only once the data and model are set up, so the path is checked here first.
PREFLIGHT: dict[str, Callable[[argparse.Namespace], None]] = {"train": _train_out_dir}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to fill its arguments."""
    parser = argparse.ArgumentParser(
        prog="hrm",
        description="Hierarchical Reasoning Model: train, evaluate, watch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"{DISTRIBUTION} {distribution_version()}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == command:
            _load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hrm`` console script.

    Returns:
        The exit code (see :data:`EPILOG`).
    """
    try:
        code = _main(argv)
        # Output still buffered would meet a closed pipe at interpreter exit, where Python
        # can only print "Exception ignored"; flush it here, where it can be handled.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except OSError as err:
        # The last flush of a stdout redirected into a full disk (`hrm eval --json > file`).
        _stdout_to_devnull()
        print(f"hrm: cannot write to stdout: {_os_error(err)}", file=sys.stderr)
        return 1


def _stdout_to_devnull() -> None:
    """After a closed pipe: point stdout at the null device, so that the flush at exit finds
    somewhere to go (Python's recipe for programs piped into ``head``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is no real file (captured by a test, replaced by a caller): nothing to do


def _main(argv: Sequence[str] | None) -> int:
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
    # Imported here, not at the top: importing hrm_env registers the envs, which `hrm --help`
    # need not wait for.
    from hrm_env.fileio import WriteError

    try:
        if args.command in PREFLIGHT:
            PREFLIGHT[args.command](args)
        return int(_load(args.command).run(args) or 0)
    except BrokenPipeError:
        raise  # stdout closed: main ends quietly
    except WriteError as err:
        # A path found unwritable up front is bad input (2); a write that failed while
        # running, such as a full disk, a runtime failure (1). The file is not left half
        # written either way (hrm_env.fileio).
        print(f"hrm {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except (ValueError, FileNotFoundError, ImportError) as err:
        # Bad input or a missing optional package is the user's to fix: say what is wrong,
        # without a traceback.
        print(f"hrm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # Any other failure of the system (a write not yet routed through hrm_env.fileio, a
        # device gone): one line naming the file, not a chain of tracebacks.
        print(f"hrm {args.command}: error: {_os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hrm {args.command}: interrupted", file=sys.stderr)
        return 130


def _os_error(err: OSError) -> str:
    """``PATH: reason`` for an ``OSError`` that names a file, else the reason alone (without
    Python's ``[Errno 28]``)."""
    reason = err.strerror or str(err) or type(err).__name__
    reason = reason[:1].lower() + reason[1:]
    return f"{os.fsdecode(err.filename)}: {reason}" if err.filename is not None else reason


if __name__ == "__main__":
    sys.exit(main())
