"""In-context RL across randomly projected tasks (the meta-RL setting of Lu et al. 2023).

A *meta-episode* draws a base environment from a pool and random linear projections of its
observations and actions, then runs ``trials`` consecutive episodes (*trials*) of that base
environment. Only the end of the last trial ends the meta-episode, so a memory agent keeps its
state across trials and can improve from one trial to the next.

Observation (size ``obs_dim + 2``)::

    [ (W @ x) / sqrt(d_base),  previous reward (r / s),  trial-start flag ]

where ``x`` is the base observation flattened, normalised per base (``envs.meta.bases``) and
zero-padded to the largest observation of the pool; ``W`` of shape ``[obs_dim, max_obs]`` has
i.i.d. zero-mean unit-variance entries (uniform: see ``ProjectedMetaEnv.sample_projections``);
``d_base`` is the base's own observation size, so every projected coordinate has about the
root-mean-square scale of ``x``. The previous reward is that of the step that led to this
observation, also across a trial boundary (so the final, often only, reward of a trial is seen);
it is zero at a meta-episode start. The trial-start flag is one on the first observation of
every trial.

Action: ``spaces.Box(-1, 1, (act_dim,))``. With ``project_actions`` the clipped action ``a`` is
mapped through ``z = M @ a``, ``M`` of shape ``[max_act, act_dim]`` with i.i.d. entries of variance
``1 / act_dim``; without it ``z = a[:max_act]``. A discrete base takes ``argmax(z[:n])`` over its
``n`` actions; a continuous one takes ``clip(z[:k], -1, 1)`` rescaled to its action bounds.
``act_dim`` must be at least the largest action count / dimension of the pool, so every base
action stays reachable and ``M`` has a right inverse (``M @ pinv(M) = I``).

With ``basis_actions`` the agent instead picks one of ``2 * act_dim`` signed unit vectors
(``spaces.Discrete``: index ``k < act_dim`` is ``+e_k``, index ``act_dim + k`` is ``-e_k``), which then goes
through the same mapping. The projection still hides which choice does what; the agent gets a
categorical policy instead of a Gaussian whose mean can leave the box and clip every sample to the
same corner (docs/RESULTS.md, setups G-H: it did not make the in-context gain appear there either).

Trial starts: by default every trial starts from a fresh reset of the base (CartPole's random
initial angle, Catch's ball column, a bandit's arm values are redrawn), so across trials only the
projections stay fixed. With ``fixed_trial_start`` every trial of a meta-episode restarts the base
from the same initial state, drawn once per meta-episode: whatever the base randomises at reset
becomes part of the task the agent can learn in context (e.g. the arm values of
``SimpleBandit-bsuite`` or ``BernoulliBandit-misc``, which turns one-pull trials into the classic
in-context bandit of RL^2). Step randomness (a Bernoulli arm's draw) still differs per step.

Reward: the base reward divided by a per-base constant so that one trial's return lies in about
[-1, 1] (see ``envs.meta.bases``).

Projections: ``projection_seeds = 0`` draws fresh projections at every meta-episode;
``projection_seeds = N > 0`` draws projection number ``projection_offset + U{0..N-1}`` from a fixed
family (seeded by ``projection_root``), so ``offset=0`` and ``offset=N`` give disjoint sets for
"train projections vs new projections" evaluation.

Implementation: the meta state keeps one state per pool member; the active one is stepped with
``lax.switch`` over the pool. Under ``vmap`` the switch runs every branch, so one step costs the
sum of one step and one reset of every pool member (the reset is shared between the trial reset and
the meta-episode auto-reset by overriding ``step``).

``info`` on every step: ``trial`` (int32, the trial this step's reward belongs to), ``trial_done``
(the trial ended with this step), ``env_index`` (index into ``pool``), ``base_reward`` (raw),
``terminated`` / ``truncated`` / ``final_observation`` as gymnax's ``step``. The meta-episode is
*terminated* when its last trial ended by the base's own termination and *truncated* when that
trial hit its step cap.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity
from ssmrl.envs.brax_adapter import conform, strong_spec
from ssmrl.envs.meta.bases import OBS_CLIP, BaseSpec, check_names, make_base

REWARD_OBS_CLIP = 10.0


@struct.dataclass
class MetaParams:
    # Upper bound of a meta-episode's length (trials x longest trial). Informational: the env ends
    # its meta-episodes itself (``is_truncated`` reads the state, not this cap).
    max_steps_in_episode: int = 1


@struct.dataclass
class MetaState:
    time: jax.Array  # steps taken in this meta-episode
    base_states: tuple  # one state per pool member; only env_index's is live
    env_index: jax.Array  # int32 index into the pool
    obs_proj: jax.Array  # [obs_dim, max_obs]
    act_proj: jax.Array  # [max_act, act_dim]
    base_obs: jax.Array  # [max_obs] normalised, padded observation of the active base
    trial: jax.Array  # int32 trial index (== trials once the last trial has ended)
    trial_time: jax.Array  # int32 steps taken in the current trial
    prev_reward: jax.Array  # float32 previous base reward / s (0 at a meta-episode start)
    trial_start: jax.Array  # bool: the current observation starts a trial
    base_terminated: jax.Array  # bool: the last base step terminated naturally
    start_states: tuple  # fixed_trial_start: the meta-episode's initial base states (else empty)
    start_obs: jax.Array  # [max_obs] normalised initial observation of the active base


def hash_uniform(seed: jax.Array, n: int) -> jax.Array:
    """``n`` floats uniform in [-1, 1) from a uint32 ``seed`` (lowbias32 integer hash of seed + i * golden)."""
    x = seed + jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    x = x ^ (x >> 16)
    return (x >> 8).astype(jnp.float32) * np.float32(2.0 / 2**24) - 1.0


class ProjectedMetaEnv(SettingsIdentity, environment.Environment):
    """Meta-RL over randomly projected base environments (gymnax 1.x API)."""

    def __init__(self, pool: tuple[str, ...] | list[str], trials: int = 4, obs_dim: int = 16, act_dim: int = 4,
                 project_actions: bool = True, trial_steps: int = 200, project_obs: bool = True,
                 projection_seeds: int = 0, projection_offset: int = 0, projection_root: int = 0,
                 brax_backend: str = "spring", basis_actions: bool = False, fixed_trial_start: bool = False):
        pool = tuple(pool)
        if not pool:
            raise ValueError("the meta pool is empty")
        check_names(pool)
        if len(set(pool)) != len(pool):
            raise ValueError(f"duplicate names in the meta pool {pool}")
        if trials < 1 or trial_steps < 1 or obs_dim < 1 or act_dim < 1:
            raise ValueError("trials, trial_steps, obs_dim and act_dim must be positive")
        if projection_seeds < 0 or projection_offset < 0:
            raise ValueError("projection_seeds and projection_offset must be >= 0")
        self.pool = pool
        self.trials = int(trials)
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.project_actions = bool(project_actions)
        self.project_obs = bool(project_obs)
        self.trial_steps = int(trial_steps)
        self.projection_seeds = int(projection_seeds)
        self.projection_offset = int(projection_offset)
        self.projection_root = int(projection_root)
        self.brax_backend = brax_backend
        self.basis_actions = bool(basis_actions)
        self.fixed_trial_start = bool(fixed_trial_start)

        self.specs: tuple[BaseSpec, ...] = tuple(make_base(n, self.trial_steps, brax_backend) for n in pool)
        self.max_obs = max(s.obs_size for s in self.specs)
        self.max_act = max(s.act_size for s in self.specs)
        if self.act_dim < self.max_act:
            raise ValueError(f"act_dim={act_dim} is smaller than the largest action count/dimension of the pool "
                             f"({self.max_act}: {[(s.name, s.act_size) for s in self.specs]}); some base actions "
                             "would be unreachable")
        if not self.project_obs and self.obs_dim < self.max_obs:
            raise ValueError(f"project_obs=False needs obs_dim >= {self.max_obs} (largest base observation)")

        n, d = len(self.specs), self.max_obs
        shift, scale = np.zeros((n, d), np.float32), np.ones((n, d), np.float32)
        for i, s in enumerate(self.specs):
            shift[i, :s.obs_size] = s.obs_shift
            scale[i, :s.obs_size] = s.obs_scale
        self._obs_shift, self._obs_scale = shift, scale
        self._obs_gain = np.array([1.0 / np.sqrt(s.obs_size) for s in self.specs], np.float32)
        self._reward_div = np.array([s.return_scale for s in self.specs], np.float32)
        self._obs_reward_div = np.array([s.reward_scale for s in self.specs], np.float32)
        self._trial_len = np.array([s.trial_len for s in self.specs], np.int32)
        # Fixed dtypes/shapes of every base state (base resets often hold Python scalars).
        self._state_specs = tuple(
            strong_spec(jax.eval_shape(lambda k, s=s: s.env.reset_env(k, s.params)[1], jax.random.key(0)))
            for s in self.specs)

    # ----------------------------------------------------------------------------------- identity
    def _config(self) -> tuple:
        return (self.pool, self.trials, self.obs_dim, self.act_dim, self.project_actions, self.project_obs,
                self.trial_steps, self.projection_seeds, self.projection_offset, self.projection_root,
                self.brax_backend, self.basis_actions, self.fixed_trial_start)

    @property
    def name(self) -> str:
        return "meta"

    @property
    def default_params(self) -> MetaParams:
        return MetaParams(max_steps_in_episode=self.trials * int(self._trial_len.max()))

    @property
    def num_actions(self) -> int:
        return 2 * self.act_dim if self.basis_actions else self.act_dim

    def action_space(self, params: MetaParams | None = None) -> spaces.Box | spaces.Discrete:
        if self.basis_actions:
            return spaces.Discrete(2 * self.act_dim)
        return spaces.Box(-np.ones(self.act_dim, np.float32), np.ones(self.act_dim, np.float32), (self.act_dim,),
                          jnp.float32)  # per-dimension bounds

    def agent_action(self, action: jax.Array) -> jax.Array:
        """The agent's action -> the ``[act_dim]`` vector in [-1, 1] that the projection maps."""
        if self.basis_actions:
            k = jnp.asarray(action, jnp.int32)
            sign = jnp.where(k < self.act_dim, 1.0, -1.0)
            return sign * jax.nn.one_hot(k % self.act_dim, self.act_dim)
        return jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (self.act_dim,)), -1.0, 1.0)

    def observation_space(self, params: MetaParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim + 2,), jnp.float32)

    # ------------------------------------------------------------------------------ projections
    def projection_key(self, key: jax.Array) -> jax.Array:
        """The key the projections of a meta-episode are drawn from (see the module docstring)."""
        if self.projection_seeds == 0:
            return key
        index = jax.random.randint(key, (), 0, self.projection_seeds) + self.projection_offset
        return jax.random.fold_in(jax.random.key(self.projection_root), index)

    def sample_projections(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(W [obs_dim, max_obs], M [max_act, act_dim])`` for projection key ``key``.

        Entries are independent, uniform with zero mean and unit variance (``W``) or variance
        ``1 / act_dim`` (``M``). They are drawn from one 32-bit seed ``jax.random.bits(key)`` through
        an integer hash of the entry index instead of ``jax.random`` itself: the auto-reset computes
        a fresh meta reset at every step, and drawing ~100 threefry normals per step made stepping
        about 2x slower.
        """
        n_w, n_m = self.obs_dim * self.max_obs, self.max_act * self.act_dim
        u = hash_uniform(jax.random.bits(key, (), jnp.uint32), n_w + n_m)  # U[-1, 1)
        w = u[:n_w].reshape(self.obs_dim, self.max_obs) * np.float32(np.sqrt(3.0))
        m = u[n_w:].reshape(self.max_act, self.act_dim) * np.float32(np.sqrt(3.0 / self.act_dim))
        return w, m

    # ------------------------------------------------------------------------------ base pieces
    def normalise_obs(self, i: int, obs: jax.Array) -> jax.Array:
        """Base ``i``'s raw observation -> flat, normalised, zero-padded ``[max_obs]``."""
        flat = jnp.reshape(obs, (-1,)).astype(jnp.float32)
        flat = jnp.pad(flat, (0, self.max_obs - flat.shape[0]))
        return jnp.clip((flat - self._obs_shift[i]) / self._obs_scale[i], -OBS_CLIP, OBS_CLIP)

    def base_action(self, i: int, action: jax.Array, act_proj: jax.Array) -> jax.Array:
        """The agent's action -> base ``i``'s action."""
        spec = self.specs[i]
        a = self.agent_action(action)
        z = act_proj @ a if self.project_actions else a[:self.max_act]
        if spec.discrete:
            return jnp.argmax(z[:spec.act_size]).astype(jnp.int32)
        u = jnp.clip(z[:spec.act_size], -1.0, 1.0)
        low, high = np.asarray(spec.act_low, np.float32), np.asarray(spec.act_high, np.float32)
        return low + (u + 1.0) * 0.5 * (high - low)

    def agent_obs(self, state: MetaState) -> jax.Array:
        if self.project_obs:
            feat = (state.obs_proj @ state.base_obs) * jnp.asarray(self._obs_gain)[state.env_index]
        else:
            feat = jnp.pad(state.base_obs, (0, self.obs_dim - self.max_obs))
        extra = jnp.stack([state.prev_reward, state.trial_start.astype(jnp.float32)])
        return jnp.concatenate([feat, extra]).astype(jnp.float32)

    def _fresh(self, key: jax.Array) -> tuple[tuple, jax.Array]:
        """A reset of every pool member: ``(states, normalised obs [P, max_obs])``."""
        keys = jax.random.split(key, len(self.specs))
        states, obs = [], []
        for i, spec in enumerate(self.specs):
            o, s = spec.env.reset_env(keys[i], spec.params)
            states.append(conform(s, self._state_specs[i]))
            obs.append(self.normalise_obs(i, o))
        return tuple(states), jnp.stack(obs)

    def _reset_from(self, key: jax.Array, fresh_states: tuple, fresh_obs: jax.Array) -> tuple[jax.Array, MetaState]:
        k_index, k_proj = jax.random.split(key)
        index = jax.random.randint(k_index, (), 0, len(self.specs)).astype(jnp.int32)
        w, m = self.sample_projections(self.projection_key(k_proj))
        state = MetaState(time=jnp.int32(0), base_states=fresh_states, env_index=index, obs_proj=w, act_proj=m,
                          base_obs=fresh_obs[index], trial=jnp.int32(0), trial_time=jnp.int32(0),
                          prev_reward=jnp.float32(0.0), trial_start=jnp.bool_(True),
                          base_terminated=jnp.bool_(False),
                          start_states=fresh_states if self.fixed_trial_start else (), start_obs=fresh_obs[index])
        return self.agent_obs(state), state

    def _transition(self, key: jax.Array, state: MetaState, action: jax.Array, fresh_states: tuple,
                    fresh_obs: jax.Array):
        """One step inside the meta-episode (trial ends restart the base; no meta-episode reset)."""
        if self.fixed_trial_start:
            fresh_states = state.start_states
            fresh_obs = jnp.broadcast_to(state.start_obs, (len(self.specs), self.max_obs))

        def branch(i: int):
            spec = self.specs[i]

            def run(operand):
                base_states, fresh_states, fresh_obs, key, action, act_proj, trial_time = operand
                obs, st, reward, term, _ = spec.env.step_env(key, base_states[i], self.base_action(i, action, act_proj),
                                                             spec.params)
                st = conform(st, self._state_specs[i])
                term = jnp.reshape(jnp.asarray(term, jnp.bool_), ())
                trial_end = jnp.logical_or(term, trial_time + 1 >= int(spec.trial_len))
                obs_n = self.normalise_obs(i, obs)
                st = jax.tree.map(lambda f, s: jax.lax.select(trial_end, f, s), fresh_states[i], st)
                next_obs = jnp.where(trial_end, fresh_obs[i], obs_n)
                states = tuple(st if j == i else base_states[j] for j in range(len(base_states)))
                reward = jnp.reshape(jnp.asarray(reward, jnp.float32), ())
                return states, next_obs, obs_n, reward, term, trial_end

            return run

        index = state.env_index
        operand = (state.base_states, fresh_states, fresh_obs, key, action, state.act_proj, state.trial_time)
        base_states, next_obs, _, reward, term, trial_end = jax.lax.switch(
            index, [branch(i) for i in range(len(self.specs))], operand)

        meta_done = jnp.logical_and(trial_end, state.trial >= self.trials - 1)
        terminated = jnp.logical_and(meta_done, term)
        truncated = jnp.logical_and(meta_done, jnp.logical_not(term))
        obs_reward = jnp.clip(reward / jnp.asarray(self._obs_reward_div)[index], -REWARD_OBS_CLIP, REWARD_OBS_CLIP)
        new_state = state.replace(
            time=state.time + 1, base_states=base_states, base_obs=next_obs,
            trial=jnp.where(trial_end, state.trial + 1, state.trial).astype(jnp.int32),
            trial_time=jnp.where(trial_end, 0, state.trial_time + 1).astype(jnp.int32),
            prev_reward=obs_reward.astype(jnp.float32),
            trial_start=trial_end, base_terminated=term)
        info = {"trial": state.trial, "trial_done": trial_end, "env_index": index, "base_reward": reward}
        meta_reward = reward / jnp.asarray(self._reward_div)[index]
        return self.agent_obs(new_state), new_state, meta_reward, terminated, truncated, info

    # -------------------------------------------------------------------------- gymnax interface
    def reset_env(self, key: jax.Array, params: MetaParams) -> tuple[jax.Array, MetaState]:
        k_fresh, k_meta = jax.random.split(key)
        fresh_states, fresh_obs = self._fresh(k_fresh)
        return self._reset_from(k_meta, fresh_states, fresh_obs)

    def step_env(self, key: jax.Array, state: MetaState, action: jax.Array, params: MetaParams):
        k_step, k_fresh = jax.random.split(key)
        fresh_states, fresh_obs = self._fresh(k_fresh)
        obs, state, reward, terminated, _, info = self._transition(k_step, state, action, fresh_states, fresh_obs)
        return obs, state, reward, terminated, info

    def is_terminated(self, state: MetaState, params: MetaParams) -> jax.Array:
        return jnp.logical_and(state.trial >= self.trials, state.base_terminated)

    def is_truncated(self, state: MetaState, params: MetaParams) -> jax.Array:
        return jnp.logical_and(state.trial >= self.trials, jnp.logical_not(state.base_terminated))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: MetaState, action: jax.Array, params: MetaParams | None = None):
        """gymnax's auto-resetting ``step``, sharing one reset of every base between the trial reset
        and the meta-episode reset (the inherited version would reset every base twice)."""
        if params is None:
            params = self.default_params
        k_step, k_fresh, k_meta = jax.random.split(key, 3)
        fresh_states, fresh_obs = self._fresh(k_fresh)
        obs_st, state_st, reward, terminated, truncated, info = self._transition(
            k_step, state, action, fresh_states, fresh_obs)
        obs_re, state_re = self._reset_from(k_meta, fresh_states, fresh_obs)
        done = jnp.logical_or(terminated, truncated)
        state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info
