"""A stable-baselines3 ``VecEnv`` over the batched halting environment.

stable-baselines3 does not take Gymnasium vector envs, and it expects its own conventions:
an episode that ends is reset *in the same step* (the returned observation is the new
episode's), the last observation is kept in ``infos[i]["terminal_observation"]``, and
``infos[i]["TimeLimit.truncated"]`` says whether the end was a time limit (never here: the
halting env only terminates). ``infos[i]["is_success"]`` (solved) is set on the final step,
which SB3 logs as the success rate. Wrap with ``VecMonitor`` to get episode returns logged.

    >>> from stable_baselines3 import PPO
    >>> from stable_baselines3.common.vec_env import VecMonitor
    >>> venv = VecMonitor(HRMVecEnv.make("sudoku", num_envs=64))  # doctest: +SKIP
    >>> PPO("MultiInputPolicy", venv).learn(10_000)               # doctest: +SKIP

Shapes: N sub-environments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from hrm_env.envs.vector import ReasoningVectorEnv

__all__ = ["HRMVecEnv"]


class HRMVecEnv(VecEnv):
    """stable-baselines3 view of a ``ReasoningVectorEnv`` (one reasoner call per step).

    Args:
        venv: the batched environment to drive.
    """

    def __init__(self, venv: ReasoningVectorEnv) -> None:
        if not isinstance(venv, ReasoningVectorEnv):
            raise TypeError(
                f"HRMVecEnv wraps a ReasoningVectorEnv, got {type(venv).__name__}; for other "
                "envs use stable-baselines3's DummyVecEnv"
            )
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    @classmethod
    def make(cls, task: str = "sudoku", num_envs: int = 1, **kwargs: Any) -> HRMVecEnv:
        """Build the batched env for ``task`` (keyword arguments as ``ReasoningVectorEnv``)."""
        return cls(ReasoningVectorEnv(num_envs=num_envs, task=task, **kwargs))

    def reset(self) -> VecEnvObs:
        """Reset every sub-environment (with the seeds given to ``seed()``, if any)."""
        if any(o for o in self._options):
            raise ValueError("the batched halting env takes no reset options")
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, infos = self.venv.reset(seed=seeds)
        self.reset_infos = [self._row_info(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions for ``step_wait``."""
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all sub-environments; finished ones restart in the same step."""
        if self._actions is None:
            raise RuntimeError("step_async() must be called before step_wait()")
        obs, rewards, terminated, truncated, infos, final = self.venv.transition(
            self._actions, same_step=True
        )
        self._actions = None
        assert final is not None
        final_obs, final_infos = final
        dones = terminated | truncated
        out_infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            if dones[i]:
                info = self._row_info(final_infos, i)
                info["terminal_observation"] = {k: v[i] for k, v in final_obs.items()}
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                info["is_success"] = info["solved"]
            else:
                info = self._row_info(infos, i)
            out_infos.append(info)
        return obs, rewards.astype(np.float32), dones, out_infos

    @staticmethod
    def _row_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
        return {k: v[i].item() for k, v in infos.items() if not k.startswith("_")}

    def close(self) -> None:
        """Close the batched env (safe to call twice)."""
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per sub-environment (needs ``render_mode="rgb_array"``)."""
        frames = self.venv.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    # Every sub-environment is a row of one shared env, so attributes are shared too.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's attribute, once per requested index."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by all sub-environments)."""
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the batched env once; its result is given for each index."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Sub-environments are rows, never wrapped."""
        return [False for _ in self._get_indices(indices)]
