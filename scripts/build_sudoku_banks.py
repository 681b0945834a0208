"""Build the bundled Sudoku banks ``hrm_env/data/sudoku_{train,test,extreme_mix}.npz``.

Reads the public collections in ``../shared/data/sudoku/*.txt`` (17-clue, magictour top1465,
forum hardest 1905 11+, forum hardest 1106), solves and rates every puzzle, drops the invalid,
non-unique and duplicate ones, and splits the rest by *source puzzle*: puzzles are grouped by
``sudoku.signature``, which no augmentation changes, and whole groups go to one side, so no
test puzzle is a transform of a train puzzle. Two test banks are taken out of training:

* ``test`` (the ``extreme`` benchmark): the groups holding the hardest puzzles (highest
  rating) of the hard collections, until it has ``--test-size`` puzzles;
* ``extreme_mix`` (the ``extreme-mix`` tier, the paper's Sudoku-Extreme kind of test split):
  ``--mix-size`` puzzles drawn uniformly at random (seed ``--mix-seed``) from all four
  collections, one per group, so it is as hard as the collections are on average. A draw may
  land on a puzzle of ``test``; both are test banks, so that costs nothing.

``train`` keeps every group that neither test bank touches.

Run from the repository root:

    python scripts/build_sudoku_banks.py [--src ../shared/data/sudoku] [--test-size 1500] \
        [--mix-size 1000] [--mix-seed 2506]

The library itself never reads the source folder; only this script does.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

from hrm_env.fileio import atomic_open
from hrm_env.puzzles import sudoku

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "sudoku"
DEFAULT_OUT = REPO / "hrm_env" / "data"
#: The collection every other one is harder than; never used for the test bank.
EASY_COLLECTIONS = {"17_clue"}


def collection_name(path: Path) -> str:
    """``puzzles5_forum_hardest_1905_11+.txt`` -> ``forum_hardest_1905_11+``."""
    return re.sub(r"^puzzles\d+_", "", path.stem)


def read_collection(path: Path) -> tuple[list[np.ndarray], int]:
    """Parse every puzzle line of a file; returns the grids and the count of malformed lines."""
    grids, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            grids.append(sudoku.parse(text.split()[0], size=9))
        except ValueError:
            bad += 1
    return grids, bad


def draw_mix(rng: np.random.Generator, group: np.ndarray, size: int) -> np.ndarray:
    """Rows of ``size`` puzzles drawn uniformly at random, at most one per signature group.

    Puzzles are visited in a random order and one is kept when no puzzle of its group is kept
    yet: a uniform draw of puzzles in which equivalent copies count once.

    Returns:
        (size,) int64 row indices, in draw order.
    """
    order = rng.permutation(len(group))
    _, first = np.unique(group[order], return_index=True)  # first visit of each group
    rows = order[np.sort(first)]
    if len(rows) < size:
        raise SystemExit(f"--mix-size {size} exceeds the {len(rows)} source-puzzle groups")
    return rows[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of *.txt collections")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the .npz files go")
    parser.add_argument("--test-size", type=int, default=1500, help="puzzles in the test bank")
    parser.add_argument(
        "--mix-size", type=int, default=1000, help="puzzles in the extreme-mix bank"
    )
    parser.add_argument("--mix-seed", type=int, default=2506, help="seed of the extreme-mix draw")
    args = parser.parse_args()

    files = sorted(args.src.glob("*.txt"))
    if not files:
        raise SystemExit(f"no *.txt collections in {args.src}")
    questions, sources = [], []
    print(f"{'collection':28s} {'lines':>7s} {'malformed':>9s}")
    for path in files:
        grids, bad = read_collection(path)
        name = collection_name(path)
        print(f"{name:28s} {len(grids) + bad:7d} {bad:9d}")
        questions.extend(grids)
        sources.extend([name] * len(grids))
    q = np.stack(questions)
    src = np.array(sources)

    # Exact duplicates across (and within) collections: keep the first occurrence.
    _, first = np.unique(q, axis=0, return_index=True)
    first = np.sort(first)
    print(f"duplicates dropped: {len(q) - len(first)}")
    q, src = q[first], src[first]

    start = time.perf_counter()
    answers, counts, ratings = sudoku.solve_batch(q)
    seconds = time.perf_counter() - start
    print(f"solved {len(q)} puzzles in {seconds:.1f} s ({len(q) / seconds:.0f}/s)")
    for label, mask in (("no solution", counts == 0), ("several solutions", counts == 2)):
        per = {str(name): int((mask & (src == name)).sum()) for name in np.unique(src)}
        print(f"dropped, {label}: {int(mask.sum())} {per}")
    keep = counts == 1
    q, answers, ratings, src = q[keep], answers[keep], ratings[keep], src[keep]

    sig = sudoku.signature(q)
    _, group = np.unique(sig, return_inverse=True)
    n_groups = int(group.max()) + 1
    print(f"{len(q)} unique puzzles in {n_groups} signature groups")

    hard = ~np.isin(src, list(EASY_COLLECTIONS))
    best = np.full(n_groups, -1, dtype=np.int64)  # highest hard-collection rating per group
    np.maximum.at(best, group[hard], ratings[hard])
    hard_count = np.bincount(group[hard], minlength=n_groups)
    test_groups: list[int] = []
    taken = 0
    for g in np.argsort(-best, kind="stable"):
        if best[g] < 0 or taken >= args.test_size:
            break
        test_groups.append(int(g))
        taken += int(hard_count[g])
    test_group_mask = np.isin(group, test_groups)
    in_test = test_group_mask & hard
    # Stored in draw order, so the first N puzzles of the mix are a random sample too.
    mix_rows = draw_mix(np.random.default_rng(args.mix_seed), group, args.mix_size)
    in_mix = np.zeros(len(q), dtype=bool)
    in_mix[mix_rows] = True
    mix_group_mask = np.isin(group, group[in_mix])
    train = ~test_group_mask & ~mix_group_mask
    dropped = (test_group_mask & ~in_test) | (mix_group_mask & ~in_mix & ~in_test)
    print(
        f"test: {int(in_test.sum())} puzzles from {len(test_groups)} groups; "
        f"extreme-mix: {int(in_mix.sum())} ({int((in_mix & in_test).sum())} also in test); "
        f"train: {int(train.sum())}; dropped (other puzzles of test groups): {int(dropped.sum())}"
    )
    assert not set(sig[in_test]) & set(sig[train]), "train/test signatures overlap"
    assert not set(sig[in_mix]) & set(sig[train]), "train/extreme-mix signatures overlap"

    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in (
        ("train", np.flatnonzero(train)),
        ("test", np.flatnonzero(in_test)),
        ("extreme_mix", mix_rows),
    ):
        bank = sudoku.SudokuSet(q[rows], answers[rows], ratings[rows], [str(x) for x in src[rows]])
        packed = sudoku.pack_bank(bank)
        roundtrip = sudoku.unpack_bank(packed)
        assert np.array_equal(roundtrip.questions, bank.questions)
        assert np.array_equal(roundtrip.answers, bank.answers)
        path = args.out / f"sudoku_{split}.npz"
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **packed)
        r = bank.ratings
        per = {str(name): int((src[rows] == name).sum()) for name in np.unique(src[rows])}
        print(
            f"{split:5s} {len(rows):6d} puzzles  rating min/median/mean/max "
            f"{r.min()}/{int(np.median(r))}/{r.mean():.0f}/{r.max()}  "
            f"extreme (>= {sudoku.EXTREME_MIN_RATING}): {int((r >= sudoku.EXTREME_MIN_RATING).sum())}  "
            f"{path.stat().st_size / 1e6:.2f} MB  {per}"
        )


if __name__ == "__main__":
    main()
