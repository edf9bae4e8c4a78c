"""Meta-RL across randomly projected tasks (Lu et al. 2023): ``envs.make("meta", ...)``."""

from __future__ import annotations

from ssmrl.envs.meta.bases import BASE_NAMES, BaseSpec, check_names, make_base
from ssmrl.envs.meta.env import MetaParams, MetaState, ProjectedMetaEnv

# Train pool: classic control with both discrete (CartPole, Acrobot, MountainCar) and continuous
# (Pendulum) actions, so the agent meets both action mappings. Held-out: MountainCarContinuous (new
# action type and reward structure on familiar-looking dynamics) and Catch (a different kind of task).
DEFAULT_TRAIN: tuple[str, ...] = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1")
DEFAULT_HELDOUT: tuple[str, ...] = ("MountainCarContinuous-v0", "Catch-bsuite")
POOLS = ("train", "heldout")


def make_meta(train=DEFAULT_TRAIN, heldout=DEFAULT_HELDOUT, pool: str = "train", trials: int = 4,
              obs_dim: int = 16, act_dim: int = 4, project_actions: bool = True, trial_steps: int = 200,
              **options) -> tuple[ProjectedMetaEnv, MetaParams]:
    """``(env, params)`` of the meta environment whose pool is the ``train`` or ``heldout`` list.

    Other ``options`` go to :class:`ProjectedMetaEnv` (``project_obs``, ``projection_seeds``,
    ``projection_offset``, ``projection_root``, ``brax_backend``, ``basis_actions``,
    ``fixed_trial_start``).
    """
    train, heldout = (train,) if isinstance(train, str) else tuple(train), \
        (heldout,) if isinstance(heldout, str) else tuple(heldout)
    check_names(train)
    check_names(heldout)
    overlap = sorted(set(train) & set(heldout))
    if overlap:
        raise ValueError(f"meta train and heldout pools must be disjoint; both contain {overlap}")
    if pool not in POOLS:
        raise ValueError(f"unknown meta pool {pool!r}; valid: {list(POOLS)}")
    names = train if pool == "train" else heldout
    env = ProjectedMetaEnv(names, trials=trials, obs_dim=obs_dim, act_dim=act_dim, project_actions=project_actions,
                           trial_steps=trial_steps, **options)
    return env, env.default_params


def evaluation_splits(**options) -> dict[str, dict]:
    """The three generalisation splits of a meta-RL run, as ``make_meta`` option sets.

    ``train``: the training pool with the training projections; ``new_projections``: the training pool
    under projections from the disjoint family ``[offset + N, offset + 2N)`` (only when training drew
    from a fixed family of ``N = projection_seeds``; with fresh projections every meta-episode, every
    evaluation projection is already new); ``heldout``: the held-out pool.
    """
    options = {k: v for k, v in options.items() if k != "pool"}
    splits = {"train": dict(options, pool="train")}
    seeds = int(options.get("projection_seeds", 0))
    if seeds > 0:
        offset = int(options.get("projection_offset", 0)) + seeds
        splits["new_projections"] = dict(options, pool="train", projection_offset=offset)
    splits["heldout"] = dict(options, pool="heldout")
    return splits


__all__ = ["BASE_NAMES", "BaseSpec", "DEFAULT_HELDOUT", "DEFAULT_TRAIN", "MetaParams", "MetaState",
           "ProjectedMetaEnv", "evaluation_splits", "make_base", "make_meta"]
