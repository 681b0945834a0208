"""Gymnasium side of hrm: puzzle domains, the halting environments and their pygame viewer.

Importing this package registers the environments and loads nothing else: no torch, no pygame,
no data. The entry points are strings, so the env modules are imported only by ``gym.make``.

    >>> import gymnasium as gym, hrm_env
    >>> env = gym.make("HRM-Sudoku-v0")          # doctest: +SKIP
    >>> envs = gym.make_vec("HRM-Sudoku-v0", num_envs=64,
    ...                     vectorization_mode="vector_entry_point")  # doctest: +SKIP
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

#: Environment id -> task name.
ENV_IDS: dict[str, str] = {
    "HRM-Sudoku-v0": "sudoku",
    "HRM-SudokuMini-v0": "sudoku-mini",
    "HRM-Maze-v0": "maze",
}

for _env_id, _task in ENV_IDS.items():
    # Re-importing (e.g. after importlib.reload) must not warn about overriding an id.
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="hrm_env.envs.reasoning:ReasoningEnv",
            vector_entry_point="hrm_env.envs.vector:ReasoningVectorEnv",
            kwargs={"task": _task},
        )

__all__ = ["ENV_IDS", "__version__"]
