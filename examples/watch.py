"""Watch the model solve puzzles, halting when its own Q head says so.

This is the adaptive-computation rule of HRM at inference: after every high-level cycle the
Q head scores "halt" against "continue", and the model stops once halt wins (or at the cycle
limit). ``hrm watch sudoku`` does the same from the command line.

Puzzles are drawn at random from the envs' default tier (``hard``, the hardest the shipped
model is rated on) and run to the model's own cycle limit.

    python examples/watch.py                       # a window (or a GIF when there is no display)
    python examples/watch.py maze --save maze.gif  # write an animation instead
"""

import argparse

import gymnasium as gym
import numpy as np

import hrm_env  # noqa: F401
from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS
from hrm_env.render.watch import has_display, write_animation

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("task", nargs="?", default="sudoku", choices=["sudoku", "maze"])
parser.add_argument("--save", default=None, help="write FILE.gif or FILE.mp4 instead of a window")
parser.add_argument("--puzzles", type=int, default=3)
parser.add_argument("--seed", type=int, default=None, help="seed of the draws (default: random)")
parser.add_argument("--threads", type=int, default=DEFAULT_INFERENCE_THREADS,
                    help="CPU threads for torch (0: torch's default, a thread per core)")  # fmt: skip
args = parser.parse_args()
if args.save is None and not has_display():
    args.save = f"watch-{args.task}.gif"

env_id = {"sudoku": "HRM-Sudoku-v0", "maze": "HRM-Maze-v0"}[args.task]
env = gym.make(env_id, render_mode="rgb_array" if args.save else "human", threads=args.threads)
frames: list[np.ndarray] = []
for episode in range(args.puzzles):
    obs, info = env.reset(seed=args.seed if episode == 0 else None)
    while True:
        if args.save:
            frames.append(env.render())
        q_halt, q_continue = obs["q"]
        obs, reward, terminated, truncated, info = env.step(int(q_halt > q_continue))
        if terminated or truncated:
            break
    if args.save:
        frames += [env.render()] * 6  # hold the committed answer a moment
    print(
        f"puzzle {episode + 1}: {'solved' if info['solved'] else 'wrong'} in {info['cycles']} cycles"
    )
env.close()
if args.save:
    print("wrote", write_animation(args.save, frames, [250] * len(frames)))
