#!/usr/bin/env bash
# Install the public alternatives that benchmarks/bench_puzzles.py measures side by side, in a
# virtualenv of their own (.bench-venv, gitignored), so they never become project dependencies.
#
#   bash benchmarks/setup_alternatives.sh          # then: python benchmarks/bench_puzzles.py
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BENCH_VENV:-.bench-venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# py-sudoku: a pure-Python Sudoku generator and backtracking solver (module name `sudoku`).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "py-sudoku==2.0.0"
"$VENV/bin/python" -c "import sudoku; print('py-sudoku ready in $VENV')"
