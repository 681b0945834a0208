"""``hrm watch sudoku|maze``: play solving episodes in a pygame window, or save them."""

from __future__ import annotations

import argparse

from hrm_agent.cli import count_type, seed_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="sudoku, sudoku-mini or maze")
    parser.add_argument(
        "--difficulty",
        default=None,
        help="puzzle tier (default: hard for sudoku, else the task's default tier)",
    )
    parser.add_argument("--seed", type=seed_type, default=None, help="seed of the puzzle draw")
    parser.add_argument(
        "--save", default=None, help="write the animation to FILE.gif or FILE.mp4 instead"
    )
    parser.add_argument("--episodes", type=count_type, default=None, help="episodes to play")
    parser.add_argument("--checkpoint", default=None, help="checkpoint stem (default: shipped)")
    parser.add_argument(
        "--device", default="cpu", help="torch device: auto, cpu, cuda, cuda:1, mps (default cpu)"
    )
    parser.add_argument("--fps", type=float, default=None, help="frames per second")
    parser.add_argument(
        "--max-cycles",
        type=int,
        default=None,
        help="cycle limit per puzzle (default: the model's own, N x max_segments)",
    )
    parser.add_argument(
        "--residuals",
        action="store_true",
        help="show the forward residuals of z_H and z_L in the side panel (key t toggles)",
    )
    from hrm_agent.sampling import add_diversity_arguments

    add_diversity_arguments(parser, guesses=False)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: one puzzle is latency-bound, and more threads "
        "fight over a busy CPU)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from hrm_agent.devices import resolve_device
    from hrm_agent.sampling import diversity_from_args
    from hrm_env.envs.reasoning import DIVERSITY_FIELDS, ENV_DIVERSITY_FIELDS
    from hrm_env.render.watch import watch

    diversity = diversity_from_args(args)
    # Resolved first: "auto" may mean the CPU (where --threads applies), and a device this
    # torch build lacks is reported before watch prints or opens anything.
    device = resolve_device(args.device)
    if args.threads > 0 and device.type == "cpu":
        torch.set_num_threads(args.threads)
    kwargs = {
        k: v
        for k, v in {
            "episodes": args.episodes,
            "fps": args.fps,
            "max_cycles": args.max_cycles,
        }.items()
        if v is not None
    }
    return watch(
        args.task,
        difficulty=args.difficulty,
        seed=args.seed,
        save=args.save,
        checkpoint=args.checkpoint,
        device=str(device),
        residuals=args.residuals,
        samples=args.samples,
        # The envs take the noise sources (their own list) and views; guesses are for eval
        # and solve.
        diversity={k: getattr(diversity, k) for k in (*DIVERSITY_FIELDS, *ENV_DIVERSITY_FIELDS)},
        **kwargs,
    )
