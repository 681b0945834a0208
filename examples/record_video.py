"""Record episodes to MP4 with Gymnasium's ``RecordVideo`` wrapper (needs moviepy).

Any Gymnasium tooling works on the halting env; here every episode of the model's own Q-head
halting is recorded into ``videos/``, on puzzles drawn at random from the envs' default tier.

    python examples/record_video.py --episodes 2 --folder videos
"""

import argparse

import gymnasium as gym
from gymnasium.wrappers import RecordVideo

import hrm_env  # noqa: F401
from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--env", default="HRM-Sudoku-v0")
parser.add_argument("--episodes", type=int, default=2)
parser.add_argument("--folder", default="videos")
parser.add_argument(
    "--seed", type=int, default=None, help="seed of the first draw (default: random)"
)
parser.add_argument("--threads", type=int, default=DEFAULT_INFERENCE_THREADS,
                    help="CPU threads for torch (0: torch's default, a thread per core)")  # fmt: skip
args = parser.parse_args()

env = gym.make(args.env, render_mode="rgb_array", threads=args.threads)
env = RecordVideo(env, args.folder, episode_trigger=lambda episode: True, name_prefix="hrm")
for episode in range(args.episodes):
    obs, info = env.reset(seed=args.seed if episode == 0 else None)
    done = False
    while not done:
        q_halt, q_continue = obs["q"]
        obs, reward, terminated, truncated, info = env.step(int(q_halt > q_continue))
        done = terminated or truncated
    print(f"episode {episode}: solved={info['solved']} cycles={info['cycles']}")
env.close()  # finishes the last video
print(f"videos in {args.folder}/")
