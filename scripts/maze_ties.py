"""How often a generated maze has more than one shortest path, per tier.

Counts the shortest S-to-G paths of each maze exactly (breadth-first distances from S and from
G, then path counts along the cells where the two add up to the length) and prints, per tier,
the share of mazes with a tie and the median number of shortest paths. These ties are why
``hrm train maze --targets closest`` exists: any shortest path is a correct answer, while a
fixed target asks for the solver's tie-break.

    python scripts/maze_ties.py --n 500 --seed 3
"""

from __future__ import annotations

import argparse
from collections import deque

import numpy as np

from hrm_env.puzzles import maze


def _distances(open_cells: np.ndarray, source: int) -> np.ndarray:
    side = maze.SIDE
    dist = np.full(maze.SEQ_LEN, -1, dtype=np.int64)
    dist[source] = 0
    queue = deque([source])
    while queue:
        c = queue.popleft()
        r, k = divmod(c, side)
        for rr, kk in ((r - 1, k), (r + 1, k), (r, k - 1), (r, k + 1)):
            n = rr * side + kk
            if 0 <= rr < side and 0 <= kk < side and open_cells[n] and dist[n] < 0:
                dist[n] = dist[c] + 1
                queue.append(n)
    return dist


def count_shortest_paths(question: np.ndarray) -> int:
    """The number of distinct shortest S-to-G paths of one maze (0 when G is unreachable)."""
    q = np.asarray(question).reshape(-1)
    open_cells = q != maze.WALL
    s = int(np.flatnonzero(q == maze.START)[0])
    g = int(np.flatnonzero(q == maze.GOAL)[0])
    from_s, from_g = _distances(open_cells, s), _distances(open_cells, g)
    length = from_s[g]
    if length < 0:
        return 0
    on_path = (from_s >= 0) & (from_g >= 0) & (from_s + from_g == length)
    ways = np.zeros(maze.SEQ_LEN, dtype=object)  # exact integers: counts can be huge
    ways[s] = 1
    side = maze.SIDE
    for c in sorted(np.flatnonzero(on_path), key=lambda i: from_s[i]):
        if c == s:
            continue
        r, k = divmod(int(c), side)
        total = 0
        for rr, kk in ((r - 1, k), (r + 1, k), (r, k - 1), (r, k + 1)):
            n = rr * side + kk
            if 0 <= rr < side and 0 <= kk < side and on_path[n] and from_s[n] == from_s[c] - 1:
                total += ways[n]
        ways[c] = total
    return int(ways[g])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="mazes per tier")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    print("tier     mazes  with a tie  median shortest paths")
    for tier in maze.TIERS:
        mazes = maze.generate(np.random.default_rng([args.seed, len(tier)]), tier, args.n)
        counts = np.array([count_shortest_paths(q) for q in mazes.questions], dtype=float)
        print(f"{tier:8s} {args.n:5d}  {np.mean(counts > 1):9.1%}  {np.median(counts):.3g}")


if __name__ == "__main__":
    main()
