"""Quickstart: the shipped HRM works on a Sudoku, one high-level cycle per environment step.

Each step is one cycle of the model's recurrent reasoning; action 0 lets it think one more
cycle, action 1 commits its current answer. Here the model's own Q head decides (halt once its
halt value beats its continue value), on a fresh ``hard`` puzzle, the envs' default tier; put
any policy in its place (``examples/sb3_halting.py`` learns one with stable-baselines3).

    python examples/quickstart.py
"""

import gymnasium as gym

import hrm_env  # noqa: F401  (registers HRM-Sudoku-v0 and HRM-Maze-v0)
from hrm_env.render.watch import has_display

env = gym.make("HRM-Sudoku-v0", render_mode="human" if has_display() else None)
obs, info = env.reset()  # a fresh puzzle each run
while True:
    q_halt, q_continue = obs["q"]
    action = int(q_halt > q_continue)  # 0 continue, 1 halt; env.action_space.sample() is random
    obs, reward, terminated, truncated, info = env.step(action)
    if terminated or truncated:
        break
print(
    f"halted after {info['cycles']} cycles: {'solved' if info['solved'] else 'not solved'} "
    f"(cell accuracy {info['cell_accuracy']:.2f}, final reward {reward:+.2f})"
)
env.close()
