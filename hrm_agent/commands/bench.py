"""``hrm bench NAME``: run ``benchmarks/bench_NAME.py`` from a checkout of the repository.

The benchmark scripts are not installed with the package (they compare against other projects
and print tables); this command finds them next to the current directory or the package.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def _benchmarks_dir() -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "benchmarks"
        if candidate.is_dir():
            return candidate
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="benchmark name: puzzles, model, train, env, ...")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the script")


def run(args: argparse.Namespace) -> int:
    folder = _benchmarks_dir()
    if folder is None:
        raise FileNotFoundError(
            "no benchmarks/ folder found; run `hrm bench` from a checkout of the hrm repository"
        )
    script = folder / f"bench_{args.name}.py"
    if not script.is_file():
        known = sorted(p.stem.removeprefix("bench_") for p in folder.glob("bench_*.py"))
        raise ValueError(f"unknown benchmark {args.name!r}; known: {', '.join(known) or 'none'}")
    sys.argv = [str(script), *args.rest]
    runpy.run_path(str(script), run_name="__main__")
    return 0
