"""What a first user sees: episodes of the envs with no arguments, halting by the Q head.

Makes each env exactly as the README's tour and the examples do (``gym.make(ENV_ID)``: the
shipped model, the envs' default tier and cycle limit), plays N episodes on puzzles drawn at
random, halting when ``q_halt > q_continue``, and prints a Markdown table of the solve rate
(with its binomial standard error) and mean cycles, to set beside ``hrm eval``'s figure for the
same tier.

    python scripts/default_episodes.py --episodes 50 --threads 1
"""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np

import hrm_env  # noqa: F401 - registers the envs


def play(env_id: str, episodes: int, seed: int | None) -> tuple[int, list[int], str, int]:
    """Solved count, cycles per episode, the tier and the cycle limit of ``episodes`` runs."""
    env = gym.make(env_id)
    solved, cycles = 0, []
    try:
        rng = np.random.default_rng(seed)
        for _ in range(episodes):
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            while True:
                q_halt, q_continue = obs["q"]
                obs, _, terminated, truncated, info = env.step(int(q_halt > q_continue))
                if terminated or truncated:
                    break
            solved += bool(info["solved"])
            cycles.append(int(info["cycles"]))
        return solved, cycles, env.unwrapped.difficulty, env.unwrapped.max_cycles
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="HRM-Sudoku-v0,HRM-Maze-v0")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="default: a fresh draw")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    print("| `gym.make(...)` | tier | cycle limit | solved | mean cycles |")
    print("| --- | --- | ---: | ---: | ---: |")
    for env_id in args.envs.split(","):
        solved, cycles, tier, limit = play(env_id.strip(), args.episodes, args.seed)
        p = solved / args.episodes
        se = math.sqrt(p * (1 - p) / args.episodes)
        print(
            f'| `"{env_id.strip()}"` | {tier} | {limit} | {solved}/{args.episodes} '
            f"({100 * p:.0f}% +- {100 * se:.0f}) | {np.mean(cycles):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
