"""Build hrm_env/data/maze_test.npz: the fixed held-out set of hard 30x30 mazes.

Evaluation and benchmarks read this file instead of regenerating, so the test set stays the same
even if the generator changes. Training streams mazes from other seeds; a repeat of one of these
1000 grids in a training stream is not a practical concern (random walls over 900 cells).

    python scripts/build_maze_test_bank.py [--n 1000] [--seed 20250624]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hrm_env.fileio import atomic_open
from hrm_env.puzzles import maze

OUT = Path(__file__).resolve().parents[1] / "hrm_env" / "data" / "maze_test.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20250624)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    mazes = maze.generate_parallel(np.random.default_rng(args.seed), "hard", args.n)
    assert maze.check_batch(mazes.questions, mazes.answers).all()
    assert (mazes.ratings > 110).all()
    with atomic_open(args.out, "wb") as f:
        np.savez_compressed(
            f,
            questions=mazes.questions,
            answers=mazes.answers,
            ratings=mazes.ratings,
            seed=np.int64(args.seed),
        )
    print(
        f"wrote {len(mazes)} hard mazes (path length {mazes.ratings.min()}..{mazes.ratings.max()}, "
        f"mean {mazes.ratings.mean():.1f}) to {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)"
    )


if __name__ == "__main__":
    main()
