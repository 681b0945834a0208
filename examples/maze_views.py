"""Think wider on a maze: each trajectory sees the maze turned or mirrored.

The maze model's convolution kernels are not symmetric, so the same maze rotated or reflected
is a different computation, and the model's mistakes seldom repeat across the eight views.
With ``samples=8, diversity={"views": True}`` the env runs all eight as one batch, reads every
answer back in the maze's own frame, and after each cycle shows the answer of the view whose Q
head is most sure. The halting policy below is the model's own in both envs; each pair of
episodes gets the same maze.

    python examples/maze_views.py                          # 10 fresh mazes of the default tier
    python examples/maze_views.py --mazes 20 --difficulty medium
"""

import argparse

import gymnasium as gym

import hrm_env  # noqa: F401  (registers the envs)


def episode(env: gym.Env, seed: int) -> dict:
    """One episode halted by the model's own Q head; returns the last info."""
    obs, info = env.reset(seed=seed)
    while True:
        action = int(obs["q"][0] > obs["q"][1])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mazes", type=int, default=10)
    parser.add_argument("--difficulty", default=None, help="easy, medium or hard (default: hard)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    one = gym.make("HRM-Maze-v0", difficulty=args.difficulty)
    wide = gym.make("HRM-Maze-v0", difficulty=args.difficulty, samples=8, diversity={"views": True})
    solved = [0, 0]
    for i in range(args.mazes):
        a, b = episode(one, args.seed + i), episode(wide, args.seed + i)
        solved[0] += a["solved"]
        solved[1] += b["solved"]
        print(
            f"maze {i + 1}: one view {'solved' if a['solved'] else 'failed'} "
            f"({a['cycles']} cycles); eight views {'solved' if b['solved'] else 'failed'} "
            f"({b['cycles']} cycles, view {b['trajectory']} chosen)"
        )
    print(f"solved: one view {solved[0]}/{args.mazes}, eight views {solved[1]}/{args.mazes}")


if __name__ == "__main__":
    main()
