"""Quickstart: the shipped HRM solves a Sudoku, one high-level cycle per environment step.

Each step is one cycle of the model's recurrent reasoning; action 0 lets it think one more
cycle, action 1 commits its current answer. Here a random agent decides; see
``examples/watch.py`` for the model's own halting rule and ``examples/sb3_halting.py`` for a
learned one.

    python examples/quickstart.py
"""

import gymnasium as gym

import hrm_env  # noqa: F401  (registers HRM-Sudoku-v0 and HRM-Maze-v0)
from hrm_env.render.watch import has_display

env = gym.make("HRM-Sudoku-v0", render_mode="human" if has_display() else None)
obs, info = env.reset(seed=0)
while True:
    obs, reward, terminated, truncated, info = env.step(
        env.action_space.sample()
    )  # 0 continue, 1 halt
    if terminated or truncated:
        break
print(
    f"halted after {info['cycles']} cycles: {'solved' if info['solved'] else 'not solved'} "
    f"(cell accuracy {info['cell_accuracy']:.2f}, final reward {reward:+.2f})"
)
env.close()
