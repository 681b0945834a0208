"""Save one rendered frame per domain from the shipped checkpoints (the README's pictures).

python scripts/render_frames.py [--out docs/figures] [--cycles 4]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402
from PIL import Image  # noqa: E402

import hrm_env  # noqa: E402, F401  (registers the env ids)
from hrm_env.fileio import atomic_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--cycles", type=int, default=4, help="cycles before the snapshot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id, name, difficulty in (
        ("HRM-Sudoku-v0", "sudoku", "easy"),
        ("HRM-Maze-v0", "maze", "easy"),
        ("HRM-SudokuMini-v0", "sudoku-mini", None),
    ):
        env = gym.make(env_id, render_mode="rgb_array", difficulty=difficulty)
        env.reset(seed=args.seed)
        for _ in range(args.cycles - 1):
            env.step(0)
        path = args.out / f"frame_{name}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(env.render()).save(tmp, format="PNG", optimize=True)
        env.close()
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
