"""Learn when the HRM should stop thinking, with stable-baselines3 (DQN or PPO).

The halting env (one step = one high-level cycle of a trained HRM; action 0 continue, 1 halt;
reward 1 for a correct committed answer, -step_cost per extra cycle) is a small MDP with a
rich observation: the model's answer, its per-cell confidence, its own Q head and the cycle
count (and with ``--latent`` the pooled high-level state z_H). This script trains a
``MultiInputPolicy`` on the batched env through its stable-baselines3 adapter, with a
progress bar, TensorBoard logs and an ``EvalCallback`` on held-out puzzles; saves the policy,
loads it back, and compares it on the held-out puzzles with the model's own Q head.

    python examples/sb3_halting.py --algo ppo --timesteps 100000       # the shipped Sudoku model
    python examples/sb3_halting.py --algo dqn --latent --n-envs 32
    python examples/sb3_halting.py --tiny                               # smoke test, seconds
    tensorboard --logdir runs/sb3_halting

On a CPU the model's forward passes dominate. ``--replay N`` (the default) runs the model
once over N training puzzles and lets the env replay those cycles during training
(``hrm_agent.policies.RecordedReasoner``: the env, its rewards and observations are the real
ones, only the network's outputs are looked up), so many more episodes fit in a few CPU
minutes; ``--replay 0`` drives the live model on freshly generated puzzles instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.vec_env import VecMonitor

from hrm_agent.devices import DEFAULT_INFERENCE_THREADS, set_inference_threads
from hrm_agent.frontier import load_or_record, model_max_cycles
from hrm_agent.policies import QHeadPolicy, SB3Policy, evaluate_policy, write_puzzle_csv
from hrm_env.envs.defaults import default_tier
from hrm_env.envs.reasoner import Reasoner
from hrm_env.envs.sb3 import HRMVecEnv
from hrm_env.puzzles.tasks import get_task

ALGOS = {"ppo": PPO, "dqn": DQN}


class TqdmCallback(BaseCallback):
    """A tqdm progress bar over timesteps (SB3's own needs the ``rich`` package)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.bar: Any = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, unit="step", desc="train", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        infos = self.locals.get("infos") or []
        returns = [i["episode"]["r"] for i in infos if "episode" in i]
        if returns:
            self.bar.set_postfix(ep_return=f"{np.mean(returns):.3f}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", choices=sorted(ALGOS), default="ppo")
    p.add_argument("--task", default="sudoku", help="sudoku, maze or sudoku-mini")
    p.add_argument("--latent", action="store_true", help="observe the pooled z_H too")
    p.add_argument("--difficulty", default=None,
                   help="tier of the training and held-out puzzles (default: the envs' "
                   "default, the hardest tier the shipped model is rated on)")  # fmt: skip
    p.add_argument("--data", default=None,
                   help="held-out puzzle file (CSV/.txt; default: fresh puzzles of the tier, "
                   "drawn apart from the training ones)")  # fmt: skip
    p.add_argument("--timesteps", type=int, default=100_000, help="env steps to train")
    p.add_argument("--n-envs", type=int, default=16, help="rows of the batched env")
    p.add_argument("--step-cost", type=float, default=0.01, help="cost of each continue")
    p.add_argument(
        "--max-cycles",
        type=int,
        default=None,
        help="the env's cycle limit (default: the model's own, N x max_segments)",
    )
    p.add_argument("--checkpoint", default=None, help="HRM checkpoint stem (default: shipped)")
    p.add_argument("--device", default="cpu", help="torch device of the HRM")
    p.add_argument("--policy-device", default="cpu", help="torch device of the SB3 policy")
    p.add_argument("--threads", type=int, default=DEFAULT_INFERENCE_THREADS,
                   help="CPU threads for torch (0: torch's default, a thread per core)")  # fmt: skip
    p.add_argument("--replay", type=int, default=512,
                   help="record this many training puzzles once and train on their replay "
                   "(0: drive the live model on fresh puzzles)")  # fmt: skip
    p.add_argument("--eval-puzzles", type=int, default=256, help="held-out puzzles to evaluate on")
    p.add_argument("--eval-freq", type=int, default=10_000, help="EvalCallback period in env steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sb3_halting",
                   help="logs, TensorBoard, saved policies, and the recorded cycles "
                   "(heldout_cycles.npz, train_cycles.npz: reused when they match; delete "
                   "them after changing the model)")  # fmt: skip
    p.add_argument("--tiny", action="store_true",
                   help="smoke test: a random tiny HRM and small budgets (well under a minute)")  # fmt: skip
    args = p.parse_args(argv)
    if args.tiny:
        args.timesteps = min(args.timesteps, 1024)
        args.n_envs = min(args.n_envs, 8)
        args.max_cycles = min(args.max_cycles or 6, 6)
        args.replay = min(args.replay, 32) or 0
        args.eval_puzzles = min(args.eval_puzzles, 32)
        args.eval_freq = min(args.eval_freq, 512)
    for name in ("timesteps", "n_envs", "max_cycles", "eval_puzzles", "eval_freq"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def make_reasoner(args: argparse.Namespace) -> Reasoner:
    """The HRM to halt: random tiny (``--tiny``), a given checkpoint, or the shipped one."""
    from hrm_agent.reasoner import TorchReasoner, load_pretrained

    if args.tiny:
        from hrm_agent.config import HRMConfig
        from hrm_agent.model import HRM

        spec = get_task(args.task)
        config = HRMConfig.preset("tiny", seq_len=spec.seq_len, vocab_size=spec.vocab_size)
        model = HRM(config, generator=torch.Generator().manual_seed(args.seed))
        return TorchReasoner(model, spec.name, device=args.device)
    return load_pretrained(args.task, device=args.device, checkpoint=args.checkpoint)


def make_model(args: argparse.Namespace, venv: Any) -> Any:
    """The SB3 learner. gamma = 1: the env's return is undiscounted and episodes end within
    max_cycles steps, so discounting would only bias the policy towards halting early."""
    common = {
        "policy": "MultiInputPolicy",
        "env": venv,
        "gamma": 1.0,
        "seed": args.seed,
        "device": args.policy_device,
        "tensorboard_log": str(Path(args.out) / "tb"),
        "verbose": 0,
    }
    if args.algo == "ppo":
        n_steps = max(8, min(128, args.timesteps // args.n_envs))
        return PPO(n_steps=n_steps, batch_size=min(256, n_steps * args.n_envs), n_epochs=10,
                   learning_rate=3e-4, ent_coef=0.01, **common)  # fmt: skip
    return DQN(learning_starts=min(1000, args.timesteps // 4), buffer_size=100_000,
               train_freq=1, gradient_steps=1, target_update_interval=1000,
               exploration_fraction=0.3, exploration_final_eps=0.02, learning_rate=3e-4,
               batch_size=128, **common)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_inference_threads(args.threads, "cpu", "--threads")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = get_task(args.task)
    reasoner = make_reasoner(args)
    if args.max_cycles is None:
        args.max_cycles = model_max_cycles(reasoner)
    env_kwargs = {"step_cost": args.step_cost, "max_cycles": args.max_cycles, "latent": args.latent}

    if args.difficulty is None:
        args.difficulty = default_tier(spec.name)
    # Held-out puzzles (--data, or fresh ones of the tier from a stream apart from the training
    # draws), recorded once for EvalCallback and the final table.
    if args.data:
        heldout = spec.load(args.data)[: args.eval_puzzles]
    else:
        heldout = spec.sample(
            np.random.default_rng([args.seed, 11]), args.eval_puzzles, args.difficulty
        )
    heldout_model = load_or_record(out / "heldout_cycles.npz", reasoner, heldout,
                                   args.max_cycles, source="held-out")  # fmt: skip
    heldout_csv = write_puzzle_csv(spec, heldout, out / "heldout.csv")

    # Training: the CPU time of recording the training puzzles and of learning is what the
    # policy cost (a reused recording costs nothing now; its cost was paid when it was made).
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    if args.replay > 0:
        # Training puzzles are fresh draws from the task's generator, never the test set.
        train = spec.sample(np.random.default_rng([args.seed, 7]), args.replay, args.difficulty)
        train_model = load_or_record(out / "train_cycles.npz", reasoner, train,
                                     args.max_cycles, source="training")  # fmt: skip
        train_env = HRMVecEnv.make(spec.name, args.n_envs, reasoner=train_model,
                                   dataset=write_puzzle_csv(spec, train, out / "train.csv"),
                                   **env_kwargs)  # fmt: skip
    else:
        train_env = HRMVecEnv.make(spec.name, args.n_envs, reasoner=reasoner,
                                   difficulty=args.difficulty, **env_kwargs)  # fmt: skip
    record_cpu = time.process_time() - cpu_start
    train_env.seed(args.seed)
    venv = VecMonitor(train_env)
    eval_env = VecMonitor(
        HRMVecEnv.make(
            spec.name,
            min(args.n_envs, len(heldout)),
            reasoner=heldout_model,
            dataset=heldout_csv,
            **env_kwargs,
        )  # fmt: skip
    )
    model = make_model(args, venv)
    # EvalCallback's episodes draw held-out puzzles at random (a monitor during training); the
    # final table below runs every held-out puzzle exactly once with evaluate_policy.
    evaluator = EvalCallback(
        eval_env,
        n_eval_episodes=len(heldout),
        eval_freq=max(1, args.eval_freq // args.n_envs),
        best_model_save_path=str(out / "best"),
        log_path=str(out / "eval"),
        deterministic=True,
        verbose=0,
    )
    run_name = f"{args.algo}{'_latent' if args.latent else ''}"
    model.learn(args.timesteps, callback=CallbackList([TqdmCallback(args.timesteps), evaluator]),
                tb_log_name=run_name)  # fmt: skip
    cpu_seconds, wall_seconds = time.process_time() - cpu_start, time.perf_counter() - wall_start
    path = out / f"{run_name}.zip"
    model.save(path)
    venv.close()
    eval_env.close()

    # Load it back: the reloaded policy must act exactly as the trained one.
    loaded = SB3Policy(ALGOS[args.algo].load(path, device=args.policy_device), name=run_name)
    probe = HRMVecEnv.make(spec.name, min(8, len(heldout)), reasoner=heldout_model,
                           dataset=heldout_csv, **env_kwargs)  # fmt: skip
    obs = probe.reset()
    same = np.array_equal(SB3Policy(model).act(obs), loaded.act(obs))
    probe.close()

    rows = []
    for policy in (QHeadPolicy(), loaded):
        result = evaluate_policy(policy, spec, heldout, args.step_cost, args.max_cycles,
                                 heldout_model, batch_size=64)  # fmt: skip
        rows.append(result.to_dict(records=False))
    print(f"\n{args.algo.upper()} ({'with' if args.latent else 'without'} z_H), "
          f"{args.timesteps} steps, {cpu_seconds / 60:.1f} CPU min ({record_cpu / 60:.1f} of them "
          f"recording training puzzles; {wall_seconds / 60:.1f} min wall); "
          f"saved {path}, reloaded: {'same actions' if same else 'DIFFERENT actions'}")  # fmt: skip
    print(f"held-out {spec.name} puzzles: {len(heldout)}, step cost {args.step_cost:g}, "
          f"max {args.max_cycles} cycles")  # fmt: skip
    print(f"{'policy':<16} {'accuracy':>9} {'cycles':>7} {'return':>8}")
    for r in rows:
        print(f"{r['policy']:<16} {100 * r['exact_accuracy']:>8.1f}% {r['mean_cycles']:>7.2f} "
              f"{r['mean_return']:>8.4f}")  # fmt: skip
    summary = {
        "algo": args.algo, "latent": args.latent, "timesteps": args.timesteps,
        "n_envs": args.n_envs, "replay": args.replay, "cpu_seconds": cpu_seconds,
        "record_cpu_seconds": record_cpu,
        "wall_seconds": wall_seconds, "reload_same_actions": same, "policy_path": str(path),
        "results": rows,
    }  # fmt: skip
    (out / f"{run_name}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
