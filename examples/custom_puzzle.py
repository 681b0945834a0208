"""Solve your own puzzle: pass it to ``reset(options={"puzzle": ...})``.

The puzzle is validated (a malformed one raises ``ValueError`` saying what is wrong), its
solution is computed by the solver so the env can score the answer, and the model thinks about
it cycle by cycle. Here it runs to its own halting decision and prints the answer after each
cycle, cells that changed marked with ``*``. With no argument it draws a fresh ``hard`` puzzle
(the tier the envs default to) and passes it in as the 81-character string you would give.

    python examples/custom_puzzle.py
    python examples/custom_puzzle.py "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"
"""

import sys

import gymnasium as gym
import numpy as np

import hrm_env  # noqa: F401
from hrm_env.envs.defaults import default_tier
from hrm_env.puzzles import sudoku
from hrm_env.puzzles.tasks import get_task


def show(grid, previous=None) -> str:
    rows = []
    for r in range(9):
        cells = []
        for c in range(9):
            i = 9 * r + c
            mark = "*" if previous is not None and grid[i] != previous[i] else " "
            cells.append(f"{grid[i] or '.'}{mark}")
        rows.append(
            " ".join(cells[:3]) + " | " + " ".join(cells[3:6]) + " | " + " ".join(cells[6:])
        )
        if r in (2, 5):
            rows.append("-" * 31)
    return "\n".join(rows)


if len(sys.argv) > 1:
    puzzle = sys.argv[1]  # any 81 characters, '.' or 0 for a blank
else:
    drawn = get_task("sudoku").sample(np.random.default_rng(), 1, default_tier("sudoku"))
    puzzle = sudoku.format(drawn.inputs[0])
    print(f"a fresh {default_tier('sudoku')} puzzle: {puzzle}")
env = gym.make("HRM-Sudoku-v0")  # the model's own cycle limit
try:
    obs, info = env.reset(options={"puzzle": puzzle})
except ValueError as err:
    sys.exit(f"not a valid puzzle: {err}")
print("puzzle:\n" + show(obs["puzzle"]))
previous = None
while True:
    q_halt, q_continue = obs["q"]
    # The model halts where q_halt > q_continue: the margin's sign is its decision.
    print(
        f"\ncycle {info['cycles']}: cell accuracy {info['cell_accuracy']:.2f}, "
        f"q_halt - q_continue {q_halt - q_continue:+.2f}"
    )
    print(show(obs["prediction"], previous))
    previous = obs["prediction"]
    obs, reward, terminated, truncated, info = env.step(int(q_halt > q_continue))
    if terminated or truncated:
        break
print(f"\nhalted after {info['cycles']} cycles: {'solved' if info['solved'] else 'not solved'}")
env.close()
