"""Numba kernels behind :mod:`hrm_env.puzzles.maze`: breadth-first search, path tracing, the
shortest-path checker and the rejection-sampling maze generator.

Everything works on flat ``uint8`` grids of the 30x30 maze (row-major, 900 cells) with the token
values of ``maze.py``. The kernels trust their inputs (shapes, dtypes, value range); the public
functions in ``maze.py`` check them first. Compiled lazily on first call and cached on disk
(``cache=True``) so later processes, including generator workers, skip the compile.

Shapes: B batch, S = 900 cells.
"""

from __future__ import annotations

import numba as nb
import numpy as np

SIDE = 30
N_CELLS = SIDE * SIDE
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
#: Extra BFS sweeps after the double sweep when the far pair is still too close.
MAX_EXTRA_SWEEPS = 2

# The searches run on a copy of the grid framed by a one-cell wall border, 32 cells wide: a
# neighbour is then always at +-1 or +-32 and never off the board, so the inner loop has neither
# bounds checks nor the integer division that recovering (row, column) would cost.
PW = SIDE + 2
PAD_CELLS = PW * PW
UP, LEFT, RIGHT, DOWN = -PW, -1, 1, PW
#: Flat index of each of the 900 cells in the padded frame.
TO_PAD = np.array([(i // SIDE + 1) * PW + i % SIDE + 1 for i in range(N_CELLS)], dtype=np.int32)


@nb.njit(cache=True)
def bfs(passable: np.ndarray, src: int, dist: np.ndarray, queue: np.ndarray) -> int:
    """Breadth-first search from ``src`` over 4-neighbour moves between passable padded cells.

    ``passable`` (PAD_CELLS,) must be False on the border. ``src`` itself need not be passable
    (the checker starts from S, which it does not mark). Fills ``dist`` (PAD_CELLS,) with move
    counts (-1 where unreachable) and ``queue`` with the visit order, which is sorted by
    distance; returns how many cells were reached.
    """
    dist[:] = -1
    dist[src] = 0
    queue[0] = src
    head = 0
    tail = 1
    while head < tail:
        c = queue[head]
        head += 1
        d = dist[c] + 1
        # Fixed neighbour order (up, left, right, down) keeps every result deterministic.
        for step in (UP, LEFT, RIGHT, DOWN):
            nbr = c + step
            # Branch-free on purpose: on random walls the "is it new" test is a coin flip that
            # a branch predictor gets wrong half the time; writing always and advancing the
            # queue tail by 0 or 1 is about twice as fast.
            new = passable[nbr] & (dist[nbr] < 0)
            dist[nbr] = d if new else dist[nbr]
            queue[tail] = nbr
            tail += new
    return tail


@nb.njit(cache=True)
def endpoints(grid: np.ndarray) -> tuple[int, int, int, int]:
    """Return (first S, first G, number of S, number of G); indices are in the padded frame."""
    s = -1
    g = -1
    ns = 0
    ng = 0
    for i in range(N_CELLS):
        v = grid[i]
        if v == START:
            ns += 1
            if s < 0:
                s = TO_PAD[i]
        elif v == GOAL:
            ng += 1
            if g < 0:
                g = TO_PAD[i]
    return s, g, ns, ng


@nb.njit(cache=True)
def _scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    passable = np.zeros(PAD_CELLS, dtype=np.bool_)  # the border stays False for good
    dist = np.empty(PAD_CELLS, dtype=np.int32)
    queue = np.empty(PAD_CELLS + 1, dtype=np.int32)  # +1: the branch-free push may write one past
    return passable, dist, queue


@nb.njit(cache=True)
def _mark_passable(grid: np.ndarray, passable: np.ndarray) -> None:
    # Walls and padding tokens (0) block; open, S, G and path cells can be walked through.
    for i in range(N_CELLS):
        passable[TO_PAD[i]] = grid[i] >= OPEN


@nb.njit(cache=True)
def _shortest(grid: np.ndarray, passable: np.ndarray, dist: np.ndarray, queue: np.ndarray) -> int:
    s, g, ns, ng = endpoints(grid)
    if ns != 1 or ng != 1:
        return -1
    _mark_passable(grid, passable)
    bfs(passable, s, dist, queue)
    return dist[g]


@nb.njit(cache=True)
def shortest_lengths(grids: np.ndarray) -> np.ndarray:
    """(B,) int32 shortest S-to-G move counts of (B, S) grids; -1 where none (or S/G not unique)."""
    b = grids.shape[0]
    out = np.empty(b, dtype=np.int32)
    passable, dist, queue = _scratch()
    for i in range(b):
        out[i] = _shortest(grids[i], passable, dist, queue)
    return out


@nb.njit(cache=True)
def endpoint_distances_batch(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moves from S and to G of every cell of (B, S) grids, (B, S) int32 each; -1 where a
    cell is a wall or cannot be reached (every cell, when S or G is not unique)."""
    b = grids.shape[0]
    from_s = np.full((b, N_CELLS), -1, dtype=np.int32)
    to_g = np.full((b, N_CELLS), -1, dtype=np.int32)
    passable, dist, queue = _scratch()
    for i in range(b):
        s, g, ns, ng = endpoints(grids[i])
        if ns != 1 or ng != 1:
            continue
        _mark_passable(grids[i], passable)
        bfs(passable, s, dist, queue)
        for j in range(N_CELLS):
            from_s[i, j] = dist[TO_PAD[j]]
        bfs(passable, g, dist, queue)
        for j in range(N_CELLS):
            to_g[i, j] = dist[TO_PAD[j]]
    return from_s, to_g


@nb.njit(cache=True)
def _search_from_goal(
    grid: np.ndarray, out: np.ndarray, passable: np.ndarray, dist: np.ndarray, queue: np.ndarray
) -> tuple[int, int, int]:
    """Copy ``grid`` to ``out`` and fill ``dist`` with the moves to G. Returns (S, G, length)
    in the padded frame; length is -1 when S cannot reach G or S or G is not unique."""
    out[:] = grid
    s, g, ns, ng = endpoints(grid)
    if ns != 1 or ng != 1:
        return s, g, -1
    _mark_passable(grid, passable)
    bfs(passable, g, dist, queue)
    return s, g, dist[s]


@nb.njit(cache=True)
def _solve_into(
    grid: np.ndarray, out: np.ndarray, passable: np.ndarray, dist: np.ndarray, queue: np.ndarray
) -> int:
    # Search from G, then walk down the distance field from S: every step goes to the first
    # neighbour (up, left, right, down) one move closer to G, so ties break the same way always.
    s, _, length = _search_from_goal(grid, out, passable, dist, queue)
    if length < 0:
        return -1
    c = s
    while dist[c] > 1:
        want = dist[c] - 1
        for step in (UP, LEFT, RIGHT, DOWN):
            if dist[c + step] == want:
                c = c + step
                break
        # Back from the padded frame to the flat 30x30 index.
        out[(c // PW - 1) * SIDE + c % PW - 1] = PATH
    return length


@nb.njit(cache=True)
def solve_batch(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answers (B, S) with one shortest path marked, and lengths (B,) int32 (-1: unsolvable)."""
    b = grids.shape[0]
    answers = np.empty_like(grids)
    lengths = np.empty(b, dtype=np.int32)
    passable, dist, queue = _scratch()
    for i in range(b):
        lengths[i] = _solve_into(grids[i], answers[i], passable, dist, queue)
    return answers, lengths


@nb.njit(cache=True)
def _closest_into(
    grid: np.ndarray,
    scores: np.ndarray,
    out: np.ndarray,
    passable: np.ndarray,
    dist_s: np.ndarray,
    dist_g: np.ndarray,
    queue: np.ndarray,
    best: np.ndarray,
    parent: np.ndarray,
) -> int:
    # Cells on some shortest path are those with dist_s + dist_g == length. In the order of the
    # search from S (sorted by distance), each such cell takes the best-scoring predecessor one
    # move nearer S; G's chain back to S is then the highest-scoring shortest path. Exact ties
    # go to the first predecessor in the fixed order up, left, right, down.
    s, g, length = _search_from_goal(grid, out, passable, dist_g, queue)
    if length < 0:
        return -1
    reached = bfs(passable, s, dist_s, queue)
    best[s] = 0.0
    for k in range(1, reached):
        c = queue[k]
        if dist_g[c] < 0 or dist_s[c] + dist_g[c] != length:
            continue
        top = -np.inf
        arg = -1
        for step in (UP, LEFT, RIGHT, DOWN):
            p = c + step
            if dist_s[p] == dist_s[c] - 1 and dist_g[p] == dist_g[c] + 1 and best[p] > top:
                top = best[p]
                arg = p
        parent[c] = arg
        flat = (c // PW - 1) * SIDE + c % PW - 1
        best[c] = top + (0.0 if c == g else scores[flat])
    c = parent[g]
    while c != s:
        out[(c // PW - 1) * SIDE + c % PW - 1] = PATH
        c = parent[c]
    return length


@nb.njit(cache=True)
def closest_batch(grids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each question, the shortest path whose cells' ``scores`` (B, S) sum highest.

    Returns answers (B, S) with that path marked (the question where there is none) and
    lengths (B,) int32 (-1: unsolvable or S/G not unique).
    """
    b = grids.shape[0]
    answers = np.empty_like(grids)
    lengths = np.empty(b, dtype=np.int32)
    passable, dist_s, queue = _scratch()
    dist_g = np.empty(PAD_CELLS, dtype=np.int32)
    best = np.full(PAD_CELLS, -np.inf)
    parent = np.full(PAD_CELLS, -1, dtype=np.int32)
    for i in range(b):
        lengths[i] = _closest_into(
            grids[i], scores[i], answers[i], passable, dist_s, dist_g, queue, best, parent
        )
    return answers, lengths


@nb.njit(cache=True)
def _check_one(
    question: np.ndarray,
    prediction: np.ndarray,
    passable: np.ndarray,
    dist: np.ndarray,
    queue: np.ndarray,
) -> bool:
    length = _shortest(question, passable, dist, queue)
    if length < 0:
        return False
    # The prediction may differ from the question only by open cells turned into path cells.
    n_path = 0
    for i in range(N_CELLS):
        p = prediction[i]
        if p == PATH:
            if question[i] != OPEN:
                return False
            n_path += 1
        elif p != question[i]:
            return False
    # A shortest path of `length` moves has exactly length - 1 cells between S and G.
    if n_path != length - 1:
        return False
    # If G is reachable from S through the marked cells, that route has at least `length` moves
    # (it runs through open cells) and at most `length` (only length - 1 cells to use), so the
    # marked cells are exactly one shortest path: simple, with no shortcut and nothing stray.
    s, g, _, _ = endpoints(question)
    for i in range(N_CELLS):
        passable[TO_PAD[i]] = prediction[i] == PATH
    passable[g] = True
    bfs(passable, s, dist, queue)
    return dist[g] == length


@nb.njit(cache=True)
def check_batch(questions: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """(B,) bool: does each prediction mark a shortest S-to-G path of its question."""
    b = questions.shape[0]
    out = np.empty(b, dtype=np.bool_)
    passable, dist, queue = _scratch()
    for i in range(b):
        out[i] = _check_one(questions[i], predictions[i], passable, dist, queue)
    return out


@nb.njit(cache=True)
def generate_into(
    rng: np.random.Generator,
    min_length: int,
    max_length: int,
    min_walls: int,
    max_walls: int,
    questions: np.ndarray,
    answers: np.ndarray,
    ratings: np.ndarray,
    start: int,
    max_attempts: int,
) -> tuple[int, int]:
    """Fill rows ``start:`` of questions/answers (B, S) and ratings (B,) by rejection sampling.

    One attempt: a uniformly random set of k walls, k uniform in [min_walls, max_walls]; a
    random open cell; the cell A farthest from it (first sweep of a double-sweep BFS, which lands
    A at one end of a long path of its component); then B uniform among the cells whose shortest
    distance from A lies in [min_length, max_length]. A and B become S and G in random order.
    Attempts with no such B are thrown away. All randomness comes from ``rng``.

    Returns (the next unfilled row, attempts used); stops early after ``max_attempts``.
    """
    b = questions.shape[0]
    perm = TO_PAD.copy()  # cells to draw walls from, as padded indices
    grid = np.empty(N_CELLS, dtype=np.uint8)
    passable, dist, queue = _scratch()
    row = start
    attempts = 0
    while row < b and attempts < max_attempts:
        attempts += 1
        k = rng.integers(min_walls, max_walls + 1)
        # Partial Fisher-Yates: perm[:k] becomes a uniform k-subset. perm is any permutation
        # left by the last attempt, which keeps the draw uniform without resetting it. The
        # index comes from one float draw (about 4x cheaper than a bounded integer draw; the
        # bias of a 53-bit float over at most 900 choices is far below anything measurable).
        for i in range(k):
            j = i + int(rng.random() * (N_CELLS - i))
            t = perm[i]
            perm[i] = perm[j]
            perm[j] = t
        for i in range(k):
            passable[perm[i]] = False
        for i in range(k, N_CELLS):
            passable[perm[i]] = True
        seed_cell = perm[k + int(rng.random() * (N_CELLS - k))]
        reached = bfs(passable, seed_cell, dist, queue)
        if reached <= min_length:
            continue  # the component has too few cells to hold a long enough path
        if 2 * dist[queue[reached - 1]] < min_length:
            # Every path in the component passes within eccentricity(seed) of the seed, so the
            # diameter is at most twice that: an exact early exit, which skips most layouts.
            continue
        # Repeated sweeps: restart from the farthest cell while that raises the eccentricity.
        # Two sweeps usually find a near-diameter pair; a few more rescue some layouts where
        # they fall short of min_length.
        a = queue[reached - 1]
        reached = bfs(passable, a, dist, queue)
        ecc = dist[queue[reached - 1]]
        for _ in range(MAX_EXTRA_SWEEPS):
            if ecc >= min_length:
                break
            a = queue[reached - 1]
            reached = bfs(passable, a, dist, queue)
            new_ecc = dist[queue[reached - 1]]
            if new_ecc <= ecc:
                break
            ecc = new_ecc
        if ecc < min_length:
            continue
        # The BFS order is sorted by distance, so the candidates are one contiguous run.
        first = -1
        last = -1
        for i in range(reached):
            d = dist[queue[i]]
            if d > max_length:
                break
            if d >= min_length:
                if first < 0:
                    first = i
                last = i
        if first < 0:
            continue
        other = queue[first + int(rng.random() * (last - first + 1))]
        s_cell, g_cell = (a, other) if rng.random() < 0.5 else (other, a)
        for i in range(N_CELLS):
            c = TO_PAD[i]
            if c == s_cell:
                grid[i] = START
            elif c == g_cell:
                grid[i] = GOAL
            elif passable[c]:
                grid[i] = OPEN
            else:
                grid[i] = WALL
        questions[row] = grid
        ratings[row] = _solve_into(grid, answers[row], passable, dist, queue)
        row += 1
    return row, attempts
