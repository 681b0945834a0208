"""Inference cost of one HRM high-level cycle (= one env step), per preset and task.

For each preset (``tiny``, ``small``, ``paper``, and ``recipe``: the model of each task's
training recipe in ``hrm_agent.recipes``) and task sizes (Sudoku: 81 cells, vocabulary
10; maze: 900 cells, vocabulary 6) it prints the parameter count and the median latency of one
``model.cycle`` + ``model.readout`` (what an environment step runs) for one puzzle and for a
batch, on the CPU; and, when CUDA is available, on the GPU in bf16 autocast, eager and
``torch.compile``-d, with the achieved fraction of the GPU's dense bf16 peak (matmul FLOPs from
``HRMConfig.flops_per_cycle``).

Usage::

    python benchmarks/bench_model.py                 # everything this machine can do
    python benchmarks/bench_model.py --presets small --tasks sudoku --repeats 20
    hrm bench model -- --no-cuda

Weights are random: latency does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from hrm_agent.config import PRESETS, HRMConfig
from hrm_agent.model import HRM
from hrm_agent.recipes import recipe_for

TASKS = {"sudoku": (81, 10), "maze": (900, 6)}

# Dense (no sparsity) bf16 tensor-core peaks in FLOP/s, by a substring of the device name.
BF16_PEAKS = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
}


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak of a CUDA device, from its name (None if unknown)."""
    for key, peak in BF16_PEAKS.items():
        if key in name:
            return peak
    return None


def median_seconds(
    fn: Callable[[], None], repeats: int, warmup: int, sync: Callable[[], None]
) -> tuple[float, float]:
    """(median, min) wall seconds of ``fn`` over ``repeats`` timed calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def cycle_timer(model: HRM, batch: int, device: torch.device) -> Callable[[], None]:
    """A closure running one env step's worth of model work on a fixed batch."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c.vocab_size, (batch, c.seq_len), generator=g).to(device)
    with torch.inference_mode():
        x = model.embed(tokens)
        state = {"carry": model.initial_carry(batch, device)}

    def step() -> None:
        with torch.inference_mode():
            state["carry"] = model.cycle(state["carry"], x, tokens)
            model.readout(state["carry"], tokens)

    return step


def make_config(preset: str, task: str) -> HRMConfig:
    """The config of ``preset`` at ``task``'s sizes; ``recipe``: the task's recipe model."""
    seq_len, vocab = TASKS[task]
    if preset == "recipe":
        recipe = recipe_for(task)
        return HRMConfig.preset(
            recipe.preset, seq_len=seq_len, vocab_size=vocab, **recipe.overrides
        )
    return HRMConfig.preset(preset, seq_len=seq_len, vocab_size=vocab)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--presets",
        default=",".join(("recipe", *reversed(PRESETS))),
        help="comma-separated presets; recipe = each task's recipe model",
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: sudoku,maze")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats (median shown)")
    parser.add_argument("--cpu-batch", default="sudoku=16,maze=2", help="CPU batch per task")
    parser.add_argument("--gpu-batch", default="sudoku=512,maze=64", help="GPU batch per task")
    parser.add_argument(
        "--max-gflop",
        type=float,
        default=250.0,
        help="skip CPU measurements whose one call exceeds this many GFLOP",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-cuda", action="store_true", help="CPU only")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile on GPU")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = [p for p in args.presets.split(",") if p]
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
    cpu_batch = {k: int(v) for k, v in (kv.split("=") for kv in args.cpu_batch.split(","))}
    gpu_batch = {k: int(v) for k, v in (kv.split("=") for kv in args.gpu_batch.split(","))}

    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print("one call = model.cycle (T low-level + 1 high-level update) + model.readout\n")
    print("CPU: median (min) over repeats; the machine may be shared, the min is the floor\n")
    print("| preset | task | params | GFLOP/puzzle | B=1 ms | batch | ms/call | ms/puzzle |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    cpu = torch.device("cpu")
    nosync = lambda: None  # noqa: E731
    for preset in presets:
        for task in tasks:
            config = make_config(preset, task)
            model = HRM(config).eval()
            gflop = config.flops_per_cycle / 1e9
            cells = []
            for batch in (1, cpu_batch[task]):
                if gflop * batch > args.max_gflop:
                    cells.append(None)
                    continue
                cells.append(
                    median_seconds(
                        cycle_timer(model, batch, cpu), args.repeats, warmup=2, sync=nosync
                    )
                )
            one = f"{cells[0][0] * 1e3:.1f} ({cells[0][1] * 1e3:.1f})" if cells[0] else "skipped"
            many = (
                f"{cells[1][0] * 1e3:.1f} ({cells[1][1] * 1e3:.1f}) | "
                f"{cells[1][0] * 1e3 / cpu_batch[task]:.2f}"
                if cells[1]
                else "skipped | -"
            )
            print(
                f"| {preset} | {task} | {config.num_parameters / 1e6:.2f}M | {gflop:.2f} | "
                f"{one} | {cpu_batch[task]} | {many} |",
                flush=True,
            )

    if args.no_cuda:
        return
    if not torch.cuda.is_available():
        print("\nCUDA: not available (skipped)")
        return
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = bf16_peak(name)
    print(
        f"\nCUDA: {name}, bf16 autocast, dense bf16 peak {peak / 1e12:.0f} TFLOP/s"
        if peak
        else f"\nCUDA: {name}, bf16 autocast, peak unknown"
    )
    print(
        "\n| preset | task | mode | B=1 ms | batch | ms/call | puzzle-cycles/s | % of bf16 peak |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    torch.backends.cuda.matmul.allow_tf32 = True
    for preset in presets:
        for task in tasks:
            config = make_config(preset, task)
            modes = ["eager"] if args.no_compile else ["eager", "compile"]
            for mode in modes:
                model = HRM(config).to(device).eval()
                if mode == "compile":
                    model.enable_compile()
                batch = gpu_batch[task]
                sync = torch.cuda.synchronize
                single, _ = median_seconds(
                    cycle_timer(model, 1, device), args.repeats * 4, warmup=3, sync=sync
                )
                seconds, _ = median_seconds(
                    cycle_timer(model, batch, device), args.repeats * 4, warmup=3, sync=sync
                )
                achieved = config.flops_per_cycle * batch / seconds
                frac = f"{100 * achieved / peak:.1f}%" if peak else "n/a"
                print(
                    f"| {preset} | {task} | {mode} | {single * 1e3:.2f} | {batch} | "
                    f"{seconds * 1e3:.2f} | {batch / seconds:,.0f} | {frac} |",
                    flush=True,
                )
                del model
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
