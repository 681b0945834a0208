"""The halting environments: single (``ReasoningEnv``), batched (``ReasoningVectorEnv``) and the
stable-baselines3 adapter (``hrm_env.envs.sb3.HRMVecEnv``, imported on its own: it needs SB3).
"""

from hrm_env.envs.reasoner import CycleOutput, Reasoner, ScriptedReasoner
from hrm_env.envs.reasoning import ReasoningEnv
from hrm_env.envs.vector import ReasoningVectorEnv

__all__ = ["CycleOutput", "Reasoner", "ReasoningEnv", "ReasoningVectorEnv", "ScriptedReasoner"]
