"""The base environments a meta-episode can draw, with their normalisation constants.

Every base is a gymnax-API environment (gymnax classic control / bsuite, or brax through
:class:`envs.brax_adapter.BraxEnv`) described by a :class:`BaseSpec`:

Observation normalisation (fixed, per base, per dimension): ``x = clip((obs - shift) / scale, ±10)``
with constants chosen from each environment's typical ranges, so every used coordinate is O(1).
For one-hot grids (Catch, DeepSea) the scale is chosen so the root mean square over the grid is
about 1 (Catch: 2 ones among 50 cells -> scale 0.2; DeepSea 8x8: 1 one among 64 -> scale 1/8).
Brax observations (joint positions and velocities) have no natural bounds; they get a per-task
scalar scale and the clip; that is rough.

Reward normalisation (scaling only; a shift would change which policy is optimal when episode
lengths vary): each base has a per-step scale ``s`` (the magnitude of one step's reward for dense
rewards, of the one-off reward for sparse ones) and is either *dense* or *sparse*. The agent
receives ``r / (s * L)`` for dense bases, where ``L`` is the trial length cap
``min(trial_steps, base episode length)``, and ``r / s`` for sparse ones, so **the return of one
trial lies in about [-1, 1] for every base** (CartPole [0, 1], Acrobot / MountainCar [-1, 0],
Pendulum [-1, 0], Catch {-1, 1}, MountainCarContinuous <= 1, ...). The *observed* previous reward
is ``r / s`` (O(1) per step, so dense rewards stay visible to the agent).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

OBS_CLIP = 10.0


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    """One base environment of the pool and how it is normalised."""

    name: str
    env: Any  # gymnax-API environment (reset_env / step_env)
    params: Any  # its params, with max_steps_in_episode = the trial length cap
    obs_size: int  # flattened observation size
    discrete: bool
    act_size: int  # number of actions (discrete) or action dimensions (continuous)
    act_low: tuple  # continuous only: per-dimension bounds
    act_high: tuple
    obs_shift: tuple  # per flattened obs dimension
    obs_scale: tuple
    reward_scale: float  # s: per-step (dense) or one-off (sparse) reward magnitude
    dense: bool
    trial_len: int  # L = min(trial_steps, base episode length)

    @property
    def return_scale(self) -> float:
        """Divisor that maps one trial's return into about [-1, 1]."""
        return self.reward_scale * (self.trial_len if self.dense else 1.0)


@dataclasses.dataclass(frozen=True)
class _Entry:
    kind: str  # "gymnax" | "brax"
    obs_shift: Any  # scalar or per-dimension
    obs_scale: Any
    reward_scale: float
    dense: bool
    default_len: int  # base episode length (gymnax default / brax 1000)
    note: str = ""


_ENTRIES: dict[str, _Entry] = {
    # gymnax classic control
    "CartPole-v1": _Entry("gymnax", 0.0, (1.0, 1.0, 0.1, 1.0), 1.0, True, 500, "+1 per step"),
    "Acrobot-v1": _Entry("gymnax", 0.0, (1.0, 1.0, 1.0, 1.0, 3.0, 6.0), 1.0, True, 500, "-1 per step"),
    "MountainCar-v0": _Entry("gymnax", (-0.5, 0.0), (0.5, 0.03), 1.0, True, 200, "-1 per step"),
    "Pendulum-v1": _Entry("gymnax", 0.0, (1.0, 1.0, 4.0), 16.2736044, True, 200, "r in [-16.27, 0]"),
    "MountainCarContinuous-v0": _Entry("gymnax", (-0.5, 0.0), (0.5, 0.03), 100.0, False, 999,
                                       "+100 at the goal, -0.1 a^2 per step"),
    # gymnax bsuite
    "Catch-bsuite": _Entry("gymnax", 0.0, 0.2, 1.0, False, 9, "+-1 when the ball lands"),
    "DeepSea-bsuite": _Entry("gymnax", 0.0, 0.125, 1.0, False, 8, "+1 treasure, -0.01/8 per right move"),
    "SimpleBandit-bsuite": _Entry("gymnax", 0.0, 1.0, 1.0, False, 1,
                                  "one pull of 11 arms worth 0, 0.1, ..., 1 (shuffled at reset)"),
    # gymnax misc bandits (arm values drawn at reset; with fixed_trial_start they stay for the meta-episode)
    "BernoulliBandit-misc": _Entry("gymnax", 0.0, 1.0, 1.0, True, 100,
                                   "two arms paying 1 with probability 0.1 / 0.9 (which one: drawn at reset)"),
    "GaussianBandit-misc": _Entry("gymnax", 0.0, 1.0, 1.0, True, 100,
                                  "arm 0 pays 0, arm 1 pays mu + N(0, 0.1^2) with mu ~ N(-1, 1) drawn at reset"),
    # brax (through envs.brax_adapter)
    "inverted_pendulum": _Entry("brax", 0.0, 1.0, 1.0, True, 1000, "+1 per step"),
    "reacher": _Entry("brax", 0.0, 1.0, 1.0, True, 1000, "-distance - control cost"),
    "hopper": _Entry("brax", 0.0, 2.0, 3.0, True, 1000, "healthy + forward velocity - control"),
    "halfcheetah": _Entry("brax", 0.0, 2.0, 5.0, True, 1000, "forward velocity - control"),
    "ant": _Entry("brax", 0.0, 2.0, 3.0, True, 1000, "healthy + forward velocity - control"),
}

BASE_NAMES: tuple[str, ...] = tuple(_ENTRIES)


def _per_dim(value: Any, n: int) -> tuple:
    arr = np.broadcast_to(np.asarray(value, np.float64), (n,)) if np.ndim(value) == 0 else np.asarray(value, np.float64)
    if arr.shape != (n,):
        raise ValueError(f"normalisation constant of length {arr.shape} for an observation of size {n}")
    return tuple(float(v) for v in arr)


def check_names(pool: tuple[str, ...] | list[str]) -> None:
    unknown = [n for n in pool if n not in _ENTRIES]
    if unknown:
        raise ValueError(f"unknown meta base environment(s) {unknown}; valid: {sorted(_ENTRIES)}")


def make_base(name: str, trial_steps: int, brax_backend: str = "spring") -> BaseSpec:
    """Build the :class:`BaseSpec` of base ``name`` with trials capped at ``trial_steps``."""
    check_names([name])
    entry = _ENTRIES[name]
    trial_len = int(min(trial_steps, entry.default_len))
    if entry.kind == "gymnax":
        import gymnax

        env, params = gymnax.make(name)
    else:
        from ssmrl.envs.brax_adapter import BraxEnv

        env = BraxEnv(name, backend=brax_backend)
        params = env.default_params
    params = params.replace(max_steps_in_episode=trial_len)
    # From the reset's output rather than ``observation_space``, which some gymnax envs cannot
    # build (BernoulliBandit-misc's mixes int and float bounds in ``lax.select``).
    obs_shape = jax.eval_shape(lambda key: env.reset_env(key, params)[0], jax.random.key(0)).shape
    obs_size = int(np.prod(obs_shape))
    space = env.action_space(params)
    discrete = hasattr(space, "n")
    if discrete:
        act_size, low, high = int(space.n), (), ()
    else:
        act_size = int(np.prod(space.shape))
        low = tuple(float(v) for v in np.broadcast_to(np.asarray(space.low, np.float64), (act_size,)))
        high = tuple(float(v) for v in np.broadcast_to(np.asarray(space.high, np.float64), (act_size,)))
    return BaseSpec(name=name, env=env, params=params, obs_size=obs_size, discrete=discrete, act_size=act_size,
                    act_low=low, act_high=high, obs_shift=_per_dim(entry.obs_shift, obs_size),
                    obs_scale=_per_dim(entry.obs_scale, obs_size), reward_scale=float(entry.reward_scale),
                    dense=entry.dense, trial_len=trial_len)


def describe() -> dict[str, str]:
    """Name -> short description of its reward."""
    return {name: e.note for name, e in _ENTRIES.items()}
