"""Solve your own puzzle: pass it to ``reset(options={"puzzle": ...})``.

The puzzle is validated (a malformed one raises ``ValueError`` saying what is wrong), its
solution is computed by the solver so the env can score the answer, and the model thinks about
it cycle by cycle. Here it runs to its own halting decision and prints the answer after each
cycle, cells that changed marked with ``*``.

    python examples/custom_puzzle.py
    python examples/custom_puzzle.py "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"
"""

import sys

import gymnasium as gym

import hrm_env  # noqa: F401

# Arto Inkala's "world's hardest Sudoku" (2012); any 81-character string works, '.' or 0 blank.
PUZZLE = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."


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


puzzle = sys.argv[1] if len(sys.argv) > 1 else PUZZLE
env = gym.make("HRM-Sudoku-v0", max_cycles=16)
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
