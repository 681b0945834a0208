"""Numba kernels behind :mod:`hrm_env.puzzles.sudoku`: solver, counter, rater and generator.

Everything here works on one grid size at a time, described by lookup tables that
``sudoku._tables`` builds once per size (box side ``b``, digits ``n = b*b``, cells ``S = n*n``):

- ``peers``: (S, P) int32, the other cells sharing a row, column or box (P = 20 for 9x9).
- ``units``: (U, n) int32, the cells of every row, column and box (U = 3n).
- ``popcount``: (1 << n,) int32, set bits per candidate mask.

A search state is one candidate word per cell, ``cand`` (S,) int32: bit ``d - 1`` set when digit
``d`` is still possible, plus the ``PLACED`` flag once the cell's digit has been removed from all
its peers. Keeping the flag inside the same word lets one row copy save a whole search node.

The search is a depth-first search with an explicit stack (no recursion, so no depth limit and
no call overhead): propagate naked and hidden singles to a fixed point, then branch on a cell
with the fewest candidates (ties: the most open peers, then the lowest index), trying its digits
from lowest to highest. The tie-break costs a little per node and saves many nodes: on the
1,500 hardest puzzles of the public collections it cuts the mean search from about 700 guesses
(first cell of the fewest) to about 270, and the time per puzzle by half. It counts solutions
up to a limit (2 answers "is it unique?") and counts *guesses*: every time it commits to a digit
while other digits of that cell are still untried. A cell with k candidates explored to the end
thus costs k - 1 guesses, so the count for a unique puzzle does not depend on digit order, and a
puzzle that singles alone solve has rating 0. This is the rating of ``sudoku.rate``; it is in the
spirit of the tdoku backtrack count used for Sudoku-Extreme, not numerically the same.

9x9 grids take a faster path with the very same search on per-digit bitboards (``_bb_*``,
described below); tests check both paths give identical counts, guesses and solutions.

Random choices (generation) use a private xorshift64* stream seeded by the caller, so results
depend only on the ``np.random.Generator`` that produced the seeds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PLACED = np.int32(1 << 16)


@njit(cache=True, inline="always")
def _lowest_bit(m):
    return m & -m


@njit(cache=True)
def _next_random(state):
    # xorshift64* (Vigna): tiny, fast, good enough to shuffle cells and digits.
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(0x2545F4914F6CDD1D)


@njit(cache=True)
def _random_below(state, bound):
    # Multiply-shift on the high 32 bits: bias is negligible for bounds this small.
    r = _next_random(state) >> np.uint64(32)
    return np.int64((r * np.uint64(bound)) >> np.uint64(32))


@njit(cache=True)
def _propagate(cand, peers, units, full, queue):
    """Naked and hidden singles to a fixed point. Returns False on a contradiction.

    ``queue`` (S,) int32 is scratch for the cells known to hold one candidate but not yet
    placed; each cell enters it at most once per call because it becomes single only once.
    """
    S = cand.shape[0]
    U, n = units.shape
    P = peers.shape[1]
    qn = 0
    for c in range(S):
        m = cand[c]
        if not m & PLACED and m & (m - 1) == 0:
            if m == 0:
                return False
            queue[qn] = c
            qn += 1
    while True:
        # Naked singles: place each queued cell and remove its digit from the peers.
        qi = 0
        while qi < qn:
            c = queue[qi]
            qi += 1
            m = cand[c]
            cand[c] = m | PLACED
            for k in range(P):
                p = peers[c, k]
                pm = cand[p]
                if pm & m:
                    pm &= ~m
                    if pm & full == 0:
                        return False
                    cand[p] = pm
                    if pm & (pm - 1) == 0:
                        queue[qn] = p
                        qn += 1
        qn = 0
        # Hidden singles: a digit with one possible cell in a unit goes there.
        for u in range(U):
            once = 0
            twice = 0
            for k in range(n):
                m = cand[units[u, k]] & full
                twice |= once & m
                once |= m
            if once != full:
                return False
            single = once & ~twice
            if single == 0:
                continue
            for k in range(n):
                c = units[u, k]
                m = cand[c]
                if m & PLACED:
                    continue
                s = m & single
                if s:
                    if s & (s - 1):
                        return False  # two digits both need this very cell
                    if s != m:
                        cand[c] = s
                        queue[qn] = c
                        qn += 1
        if qn == 0:
            return True


@njit(cache=True)
def _search(root, peers, units, popcount, limit, solution, stack, cells, rests, rng, randomize):
    """Depth-first search from the candidate words ``root`` (S,) (not modified).

    Args:
        limit: stop after this many solutions.
        solution: (S,) uint8 output, filled with the first solution found.
        stack: (S + 1, S) int32 scratch for the search states, one row per depth.
        cells, rests: (S + 1,) int64 scratch: branching cell and its untried digits per depth.
        rng: (1,) uint64 xorshift state, used only when ``randomize``.
        randomize: try a cell's digits in random order instead of lowest first.

    Returns:
        (number of solutions found, capped at ``limit``; number of guesses).
    """
    S = root.shape[0]
    n = units.shape[1]
    full = np.int32((1 << n) - 1)
    count = 0
    guesses = 0
    depth = 0
    queue = np.empty(S, np.int32)
    for c in range(S):
        stack[0, c] = root[c]
    ok = _propagate(stack[0], peers, units, full, queue)
    while True:
        if ok:
            cand = stack[depth]
            best = -1
            fewest = n + 1
            for c in range(S):
                m = cand[c]
                if not m & PLACED and popcount[m] < fewest:
                    fewest = popcount[m]
            # Ties go to the cell with the most open peers, then to the first.
            top = -1
            for c in range(S):
                m = cand[c]
                if m & PLACED or popcount[m] != fewest:
                    continue
                score = 0
                for k in range(peers.shape[1]):
                    if not cand[peers[c, k]] & PLACED:
                        score += 1
                if score > top:
                    top = score
                    best = c
            if best < 0:
                count += 1
                if count == 1:
                    for c in range(S):
                        m = cand[c] & full
                        d = 0
                        while m:
                            m >>= 1
                            d += 1
                        solution[c] = np.uint8(d)
                if count >= limit:
                    return count, guesses
                ok = False
            else:
                m = cand[best]
                if randomize:
                    pick = _random_below(rng, fewest)
                    bit = _lowest_bit(m)
                    for _ in range(pick):
                        m &= ~bit
                        bit = _lowest_bit(m)
                    m = cand[best]
                else:
                    bit = _lowest_bit(m)
                cells[depth] = best
                rests[depth] = m & ~bit
                guesses += 1  # k >= 2 candidates, so others remain untried
                child = stack[depth + 1]
                for c in range(S):
                    child[c] = cand[c]
                child[best] = bit
                depth += 1
                ok = _propagate(child, peers, units, full, queue)
                continue
        # Backtrack to the deepest branching cell with digits left to try.
        while depth > 0 and rests[depth - 1] == 0:
            depth -= 1
        if depth == 0:
            return count, guesses
        rest = rests[depth - 1]
        if randomize:
            pick = _random_below(rng, popcount[rest])
            bit = _lowest_bit(rest)
            tmp = rest
            for _ in range(pick):
                tmp &= ~bit
                bit = _lowest_bit(tmp)
        else:
            bit = _lowest_bit(rest)
        rest &= ~bit
        rests[depth - 1] = rest
        if rest:
            guesses += 1
        parent = stack[depth - 1]
        child = stack[depth]
        for c in range(S):
            child[c] = parent[c]
        child[cells[depth - 1]] = bit
        ok = _propagate(child, peers, units, full, queue)


@njit(cache=True)
def _root_from_grid(grid, full, root):
    """Candidate words for a grid: a given is its own bit, a blank has every digit."""
    for c in range(grid.shape[0]):
        d = grid[c]
        root[c] = full if d == 0 else np.int32(1 << (d - 1))


@njit(cache=True)
def solve_batch_kernel(puzzles, peers, units, popcount, limit, solutions, counts, guesses):
    """Solve each row of ``puzzles`` (B, S) uint8, counting solutions up to ``limit``.

    Writes ``solutions`` (B, S) uint8 (zeros where none), ``counts`` (B,) and ``guesses`` (B,).
    """
    B, S = puzzles.shape
    n = units.shape[1]
    full = np.int32((1 << n) - 1)
    root = np.empty(S, np.int32)
    stack = np.empty((S + 1, S), np.int32)
    cells = np.empty(S + 1, np.int64)
    rests = np.empty(S + 1, np.int64)
    rng = np.ones(1, np.uint64)
    for b in range(B):
        _root_from_grid(puzzles[b], full, root)
        solutions[b, :] = 0
        counts[b], guesses[b] = _search(
            root, peers, units, popcount, limit, solutions[b], stack, cells, rests, rng, False
        )


# --------------------------------------------------------------------------------------------
# 9x9 fast path: the same search on per-digit bitboards.
#
# A 9x9 state is 30 int64 words: word 3*d + w holds the candidate cells of digit d + 1 in band w
# (27 bits, bit 9*r + c for row r of the band and column c), and word 27 + w the solved cells
# of band w. Cell index i = 27*w + bit, so "lowest set bit first" is row-major order and the
# search below makes exactly the choices of the generic one; only the bookkeeping is faster
# (a placement is a dozen word operations instead of a loop over 20 peers, and hidden singles
# are rechecked only for digits whose board changed). Tests compare both kernels.
# --------------------------------------------------------------------------------------------

_M27 = (1 << 27) - 1
_ROW = 0x1FF  # row 0 of a band
_BOX = 0x1C0E07  # box 0 of a band (3 columns in each of its 3 rows)
_COL = 0x40201  # column 0 of a band (one bit in each of its 3 rows)
_WORDS = 30


def _make_bitboard_peers() -> np.ndarray:
    peers = np.zeros((81, 3), np.int64)
    for i in range(81):
        r, c = divmod(i, 9)
        for j in range(81):
            rj, cj = divmod(j, 9)
            if j != i and (rj == r or cj == c or (rj // 3 == r // 3 and cj // 3 == c // 3)):
                peers[i, j // 27] |= 1 << (j % 27)
    return peers


_BB_PEERS = _make_bitboard_peers()
# de Bruijn multiply-and-lookup: index of the single set bit of a 32-bit word.
_DEBRUIJN = 0x077CB531
_DEBRUIJN_INDEX = np.zeros(32, np.int64)
for _i in range(32):
    _DEBRUIJN_INDEX[(((1 << _i) * _DEBRUIJN) & 0xFFFFFFFF) >> 27] = _i
del _i


@njit(cache=True, inline="always")
def _bit_index(bit):
    return _DEBRUIJN_INDEX[((bit * _DEBRUIJN) & 0xFFFFFFFF) >> 27]


@njit(cache=True, inline="always")
def _popcount(x):
    """Set bits of a non-negative word below 2**32 (SWAR; LLVM turns it into popcnt)."""
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return ((x * 0x01010101) & 0xFFFFFFFF) >> 24


@njit(cache=True)
def _bb_place(st, d, w, bit):
    """Put digit ``d`` (0-based) in cell ``bit`` of band ``w``; return the digits whose board changed."""
    index = _bit_index(bit)
    changed = 1 << d
    for e in range(9):
        m = st[3 * e + w]
        changed |= ((m >> index) & 1) << e
        st[3 * e + w] = m & ~bit
    cell = 27 * w + index
    st[3 * d] &= ~_BB_PEERS[cell, 0]
    st[3 * d + 1] &= ~_BB_PEERS[cell, 1]
    st[3 * d + 2] &= ~_BB_PEERS[cell, 2]
    st[3 * d + w] |= bit
    st[27 + w] |= bit
    return changed


@njit(cache=True)
def _bb_propagate(st, dirty):
    """Singles to a fixed point on a bitboard state; ``dirty``: digits to recheck for hidden singles."""
    while True:
        # Naked singles, band by band: cells covered by exactly one digit board.
        again = True
        while again:
            again = False
            for w in range(3):
                once = 0
                twice = 0
                for d in range(9):
                    m = st[3 * d + w]
                    twice |= once & m
                    once |= m
                open_cells = ~st[27 + w] & _M27
                if open_cells & ~once:
                    return False
                singles = once & ~twice & open_cells
                while singles:
                    bit = singles & -singles
                    singles ^= bit
                    d = 0
                    while d < 9 and not st[3 * d + w] & bit:
                        d += 1
                    if d == 9:
                        return False  # an earlier placement of this pass took its last digit
                    dirty |= _bb_place(st, d, w, bit)
                    again = True
        # Hidden singles, digit by digit, until one places something (then naked singles again).
        placed = False
        while dirty and not placed:
            d = _bit_index(dirty & -dirty)
            dirty &= dirty - 1
            # Rows and boxes lie inside one band; columns span all three.
            b0 = st[3 * d]
            b1 = st[3 * d + 1]
            b2 = st[3 * d + 2]
            h0 = 0
            h1 = 0
            h2 = 0
            for k in range(3):
                row = _ROW << (9 * k)
                box = _BOX << (3 * k)
                x = b0 & row
                y = b0 & box
                if x == 0 or y == 0:
                    return False
                if x & (x - 1) == 0:
                    h0 |= x
                if y & (y - 1) == 0:
                    h0 |= y
                x = b1 & row
                y = b1 & box
                if x == 0 or y == 0:
                    return False
                if x & (x - 1) == 0:
                    h1 |= x
                if y & (y - 1) == 0:
                    h1 |= y
                x = b2 & row
                y = b2 & box
                if x == 0 or y == 0:
                    return False
                if x & (x - 1) == 0:
                    h2 |= x
                if y & (y - 1) == 0:
                    h2 |= y
            once = 0
            twice = 0
            for b in (b0, b1, b2):
                for k in range(3):
                    seg = (b >> (9 * k)) & _ROW
                    twice |= once & seg
                    once |= seg
            if once != _ROW:
                return False
            cols = once & ~twice
            if cols:
                spread = cols * _COL  # each single column's bit in all three rows of a band
                h0 |= b0 & spread
                h1 |= b1 & spread
                h2 |= b2 & spread
            h0 &= ~st[27]
            h1 &= ~st[28]
            h2 &= ~st[29]
            for w in range(3):
                h = h0 if w == 0 else (h1 if w == 1 else h2)
                while h:
                    bit = h & -h
                    h ^= bit
                    if not st[3 * d + w] & bit:
                        return False  # this digit's only place in a unit was just taken away
                    dirty |= _bb_place(st, d, w, bit)
                    placed = True
        if not placed:
            return True


@njit(cache=True)
def _bb_root(grid, root):
    """Bitboard state of a 9x9 grid with its givens placed; False if two givens clash."""
    for i in range(27):
        root[i] = _M27
    root[27] = 0
    root[28] = 0
    root[29] = 0
    for c in range(81):
        v = grid[c]
        if v:
            d = v - 1
            w = c // 27
            bit = np.int64(1) << (c % 27)
            if not root[3 * d + w] & bit:
                return False
            _bb_place(root, d, w, bit)
    return True


@njit(cache=True)
def _bb_search(root, limit, solution, stack, cells, rests):
    """The search of ``_search`` on bitboards. ``stack`` is (82, 30) int64 scratch.

    ``rests[depth]`` holds the untried digits (bit d for digit d + 1) of the branching cell.
    """
    count = 0
    guesses = 0
    depth = 0
    tally = np.empty((3, 5), np.int64)  # per band: count bits c0..c3, open cells
    for i in range(_WORDS):
        stack[0, i] = root[i]
    ok = _bb_propagate(stack[0], 0x1FF)
    while True:
        if ok:
            st = stack[depth]
            best = -1
            fewest = 10
            # Candidate counts per cell as a 4-bit number sliced over four words (c3 c2 c1 c0).
            for w in range(3):
                c0 = 0
                c1 = 0
                c2 = 0
                c3 = 0
                for d in range(9):
                    m = st[3 * d + w]
                    carry = c0 & m
                    c0 ^= m
                    carry2 = c1 & carry
                    c1 ^= carry
                    carry3 = c2 & carry2
                    c2 ^= carry2
                    c3 |= carry3
                open_cells = ~st[27 + w] & _M27
                tally[w, 0] = c0
                tally[w, 1] = c1
                tally[w, 2] = c2
                tally[w, 3] = c3
                tally[w, 4] = open_cells
                for k in range(2, fewest):
                    sel = open_cells
                    sel &= c0 if k & 1 else ~c0
                    sel &= c1 if k & 2 else ~c1
                    sel &= c2 if k & 4 else ~c2
                    sel &= c3 if k & 8 else ~c3
                    if sel:
                        fewest = k
                        break
            # Among those, the cell with the most open peers (then the first): it constrains
            # the most cells, so its guesses fail or propagate soonest.
            top = -1
            for w in range(3 if fewest < 10 else 0):
                sel = tally[w, 4]
                sel &= tally[w, 0] if fewest & 1 else ~tally[w, 0]
                sel &= tally[w, 1] if fewest & 2 else ~tally[w, 1]
                sel &= tally[w, 2] if fewest & 4 else ~tally[w, 2]
                sel &= tally[w, 3] if fewest & 8 else ~tally[w, 3]
                while sel:
                    bit = sel & -sel
                    sel ^= bit
                    c = 27 * w + _bit_index(bit)
                    score = (
                        _popcount(_BB_PEERS[c, 0] & tally[0, 4])
                        + _popcount(_BB_PEERS[c, 1] & tally[1, 4])
                        + _popcount(_BB_PEERS[c, 2] & tally[2, 4])
                    )
                    if score > top:
                        top = score
                        best = c
            if best < 0:
                count += 1
                if count == 1:
                    for c in range(81):
                        w = c // 27
                        bit = np.int64(1) << (c % 27)
                        for d in range(9):
                            if st[3 * d + w] & bit:
                                solution[c] = d + 1
                                break
                if count >= limit:
                    return count, guesses
                ok = False
            else:
                w = best // 27
                bit = np.int64(1) << (best % 27)
                digits = 0
                for d in range(9):
                    if st[3 * d + w] & bit:
                        digits |= 1 << d
                first = digits & -digits
                cells[depth] = best
                rests[depth] = digits & ~first
                guesses += 1
                child = stack[depth + 1]
                for i in range(_WORDS):
                    child[i] = st[i]
                depth += 1
                dirty = _bb_place(child, _bit_index(first), w, bit)
                ok = _bb_propagate(child, dirty)
                continue
        while depth > 0 and rests[depth - 1] == 0:
            depth -= 1
        if depth == 0:
            return count, guesses
        rest = rests[depth - 1]
        first = rest & -rest
        rest &= ~first
        rests[depth - 1] = rest
        if rest:
            guesses += 1
        parent = stack[depth - 1]
        child = stack[depth]
        for i in range(_WORDS):
            child[i] = parent[i]
        cell = cells[depth - 1]
        dirty = _bb_place(child, _bit_index(first), cell // 27, np.int64(1) << (cell % 27))
        ok = _bb_propagate(child, dirty)


@njit(cache=True)
def solve_batch9_kernel(puzzles, limit, solutions, counts, guesses):
    """``solve_batch_kernel`` for 9x9 puzzles (B, 81) on bitboards (same results, faster)."""
    B = puzzles.shape[0]
    root = np.empty(_WORDS, np.int64)
    stack = np.empty((82, _WORDS), np.int64)
    cells = np.empty(82, np.int64)
    rests = np.empty(82, np.int64)
    for b in range(B):
        solutions[b, :] = 0
        if not _bb_root(puzzles[b], root):
            counts[b] = 0
            guesses[b] = 0
            continue
        counts[b], guesses[b] = _bb_search(root, limit, solutions[b], stack, cells, rests)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _count(
    grid, cell, digit, peers, units, popcount, scratch, root, stack, cells, rests, bb_root, bb_stack
):
    """Solutions of ``grid`` (up to 2), or with ``cell >= 0``: whether one exists whose ``cell``
    is not ``digit`` (returns 0 or 1). Also returns the guesses. 9x9 grids use the bitboards."""
    S = grid.shape[0]
    limit = 2 if cell < 0 else 1
    if S == 81:
        if not _bb_root(grid, bb_root):
            return 0, 0
        if cell >= 0:
            bb_root[3 * (digit - 1) + cell // 27] &= ~(np.int64(1) << (cell % 27))
        return _bb_search(bb_root, limit, scratch, bb_stack, cells, rests)
    full = np.int32((1 << units.shape[1]) - 1)
    _root_from_grid(grid, full, root)
    if cell >= 0:
        root[cell] = full & ~np.int32(1 << (digit - 1))
    rng = np.ones(1, np.uint64)
    return _search(root, peers, units, popcount, limit, scratch, stack, cells, rests, rng, False)


@njit(cache=True)
def _singles_solve(grid, peers, units, root, queue, bb_root):
    """True when naked and hidden singles alone complete ``grid`` (so it is unique, rating 0)."""
    S = grid.shape[0]
    if S == 81:
        if not _bb_root(grid, bb_root) or not _bb_propagate(bb_root, 0x1FF):
            return False
        return bb_root[27] == _M27 and bb_root[28] == _M27 and bb_root[29] == _M27
    full = np.int32((1 << units.shape[1]) - 1)
    _root_from_grid(grid, full, root)
    if not _propagate(root, peers, units, full, queue):
        return False
    for c in range(S):
        if not root[c] & PLACED:
            return False
    return True


@njit(cache=True)
def generate_kernel(seeds, peers, units, popcount, mode, min_givens, puzzles, solutions, ratings):
    """One minimal puzzle per seed: a random full grid, dug out cell by cell in random order.

    Args:
        seeds: (B,) uint64 nonzero seeds of the private random streams, one per puzzle.
        mode: 0 keeps a removal when the puzzle stays unique; 1 only when singles alone still
            solve it (so every puzzle has rating 0).
        min_givens: (B,) stop digging at this many givens (0: dig until no cell can go).
        puzzles, solutions: (B, S) uint8 outputs; ratings: (B,) int64 output.
    """
    B, S = puzzles.shape
    n = units.shape[1]
    full = np.int32((1 << n) - 1)
    rng = np.empty(1, np.uint64)
    root = np.empty(S, np.int32)
    queue = np.empty(S, np.int32)
    stack = np.empty((S + 1, S), np.int32)
    cells = np.empty(S + 1, np.int64)
    rests = np.empty(S + 1, np.int64)
    scratch = np.empty(S, np.uint8)
    bb_root = np.empty(_WORDS, np.int64)
    bb_stack = np.empty((82, _WORDS), np.int64)
    order = np.empty(S, np.int64)
    for b in range(B):
        puzzle = puzzles[b]
        solution = solutions[b]
        rng[0] = seeds[b] if seeds[b] != 0 else np.uint64(0x9E3779B97F4A7C15)
        # A random full grid: the search on an empty board with digits tried in random order.
        for c in range(S):
            root[c] = full
        _search(root, peers, units, popcount, 1, solution, stack, cells, rests, rng, True)
        for c in range(S):
            puzzle[c] = solution[c]
            order[c] = c
        for i in range(S - 1, 0, -1):
            j = _random_below(rng, i + 1)
            order[i], order[j] = order[j], order[i]
        givens = S
        for i in range(S):
            if givens <= min_givens[b]:
                break
            c = order[i]
            d = puzzle[c]
            puzzle[c] = 0
            if mode == 1:
                keep_out = _singles_solve(puzzle, peers, units, root, queue, bb_root)
            else:
                # Unique iff no solution puts another digit here: search only that subtree.
                other, _ = _count(
                    puzzle,
                    c,
                    d,
                    peers,
                    units,
                    popcount,
                    scratch,
                    root,
                    stack,
                    cells,
                    rests,
                    bb_root,
                    bb_stack,
                )
                keep_out = other == 0
            if keep_out:
                givens -= 1
            else:
                puzzle[c] = d
        _, ratings[b] = _count(
            puzzle,
            -1,
            0,
            peers,
            units,
            popcount,
            scratch,
            root,
            stack,
            cells,
            rests,
            bb_root,
            bb_stack,
        )
