"""Offline-RL datasets on disk: one ``.npz`` per task plus a ``card.json`` describing the whole set.

Layout of a dataset directory (format version 1)::

    <dir>/card.json
    <dir>/task_000.npz
    <dir>/task_001.npz
    ...

Each ``task_XXX.npz`` holds the episodes of one task, every episode of the same length ``T``:

==========================  =====================  =========================================================
key                         shape / dtype          meaning
==========================  =====================  =========================================================
``observations``            [N_ep, T, obs] f32     observation the action was taken in (raw env observation)
``actions``                 [N_ep, T, act] f32     action the environment received (after clipping)
``rewards``                 [N_ep, T] f32          reward received for that action
``dones``                   [N_ep, T] bool         the episode ended with this step (last step is True)
``next_observations``       [N_ep, T, obs] f32     observation after the step (before any auto-reset)
``params/<field>``          any                    the task's env params, one entry per params field
==========================  =====================  =========================================================

``card.json`` records ``format_version``, ``env`` (registry name) and ``env_options``, the task
split (``split``: "train"/"test", ``split_seed``, ``task_indices`` into that split), the ``policy``
that produced the data (a free-form dict with at least ``description``), the ``quality`` label
("medium", "expert", "medium_expert", ...), the ``seed``, shapes (``num_tasks``,
``episodes_per_task``, ``horizon``, ``obs_dim``, ``act_dim``), per-task return statistics
(``tasks``: one entry per file with ``index``, ``file``, ``return_mean/std/min/max``) and
``return_stats`` over every episode. Read it back with :func:`read_dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT_VERSION = 1
CARD_FILE = "card.json"
EPISODE_KEYS = ("observations", "actions", "rewards", "dones", "next_observations")
REQUIRED_KEYS = ("observations", "actions", "rewards", "dones")
PARAMS_PREFIX = "params/"


def task_file(i: int) -> str:
    return f"task_{i:03d}.npz"


def params_to_arrays(params: Any) -> dict[str, np.ndarray]:
    """A task's env params (a flax struct dataclass or a mapping) as ``{field: numpy array}``."""
    if dataclasses.is_dataclass(params):
        items = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    elif isinstance(params, Mapping):
        items = dict(params)
    else:
        raise TypeError(f"task params must be a dataclass or a mapping, got {type(params).__name__}")
    return {k: np.asarray(v) for k, v in items.items()}


def params_from_arrays(template: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Rebuild a params object of the same type as ``template`` (e.g. ``env.default_params``)."""
    import jax.numpy as jnp

    return template.replace(**{k: jnp.asarray(v) for k, v in arrays.items()})


def return_stats(returns: np.ndarray) -> dict[str, float]:
    returns = np.asarray(returns, np.float64)
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max())}


def _check_episodes(i: int, ep: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [k for k in REQUIRED_KEYS if k not in ep]
    if missing:
        raise ValueError(f"task {i}: missing episode arrays {missing}; required: {list(REQUIRED_KEYS)}")
    bad = sorted(set(ep) - set(EPISODE_KEYS))
    if bad:
        raise ValueError(f"task {i}: unknown episode arrays {bad}; valid: {list(EPISODE_KEYS)}")
    out = {
        "observations": np.asarray(ep["observations"], np.float32),
        "actions": np.asarray(ep["actions"], np.float32),
        "rewards": np.asarray(ep["rewards"], np.float32),
        "dones": np.asarray(ep["dones"], bool),
    }
    if "next_observations" in ep:
        out["next_observations"] = np.asarray(ep["next_observations"], np.float32)
    n, t = out["rewards"].shape if out["rewards"].ndim == 2 else (None, None)
    if n is None:
        raise ValueError(f"task {i}: rewards must be [N_ep, T], got shape {out['rewards'].shape}")
    for key in ("observations", "actions", "next_observations"):
        if key in out and (out[key].ndim != 3 or out[key].shape[:2] != (n, t)):
            raise ValueError(f"task {i}: {key} must be [N_ep={n}, T={t}, dim], got {out[key].shape}")
    if out["dones"].shape != (n, t):
        raise ValueError(f"task {i}: dones must be [N_ep={n}, T={t}], got {out['dones'].shape}")
    return out


def write_dataset(directory: str, episodes: Sequence[Mapping[str, np.ndarray]], *, env: str,
                  task_params: Sequence[Any], split: str, split_seed: int, task_indices: Sequence[int],
                  policy: Mapping[str, Any], quality: str, seed: int,
                  env_options: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> dict:
    """Write one ``.npz`` per task and ``card.json`` into ``directory``; returns the card.

    ``episodes[i]`` maps the keys of :data:`EPISODE_KEYS` to arrays of task ``i``;
    ``task_params[i]`` is that task's env params (dataclass or mapping); ``task_indices[i]`` is its
    index within the ``split`` of ``task_split(env, split_seed)``.
    """
    if not (len(episodes) == len(task_params) == len(task_indices)) or not episodes:
        raise ValueError(f"need one entry per task in episodes ({len(episodes)}), task_params ({len(task_params)}) "
                         f"and task_indices ({len(task_indices)}), at least one task")
    if "description" not in policy:
        raise ValueError("policy must include a 'description'")
    os.makedirs(directory, exist_ok=True)
    tasks, all_returns, shapes = [], [], set()
    for i, (ep, params, index) in enumerate(zip(episodes, task_params, task_indices)):
        arrays = _check_episodes(i, ep)
        shapes.add((arrays["rewards"].shape[1], arrays["observations"].shape[2], arrays["actions"].shape[2]))
        params_arrays = {PARAMS_PREFIX + k: v for k, v in params_to_arrays(params).items()}
        np.savez(os.path.join(directory, task_file(i)), **arrays, **params_arrays)
        returns = arrays["rewards"].sum(axis=1)
        all_returns.append(returns)
        tasks.append({"index": int(index), "file": task_file(i), "num_episodes": int(returns.shape[0]),
                      **return_stats(returns)})
    if len(shapes) != 1:
        raise ValueError(f"every task must share (horizon, obs_dim, act_dim); got {sorted(shapes)}")
    horizon, obs_dim, act_dim = shapes.pop()
    counts = {t["num_episodes"] for t in tasks}
    card = {
        "format_version": FORMAT_VERSION,
        "env": env,
        "env_options": dict(env_options or {}),
        "split": split,
        "split_seed": int(split_seed),
        "task_indices": [int(i) for i in task_indices],
        "policy": dict(policy),
        "quality": quality,
        "seed": int(seed),
        "num_tasks": len(tasks),
        "episodes_per_task": counts.pop() if len(counts) == 1 else None,
        "horizon": int(horizon),
        "obs_dim": int(obs_dim),
        "act_dim": int(act_dim),
        "return_stats": return_stats(np.concatenate(all_returns)),
        "tasks": tasks,
        **dict(extra or {}),
    }
    with open(os.path.join(directory, CARD_FILE), "w") as f:
        json.dump(card, f, indent=2)
    return card


def read_card(directory: str) -> dict:
    path = os.path.join(directory, CARD_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no dataset card at {path}")
    with open(path) as f:
        try:
            card = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is corrupt (not valid JSON: {error}); collect the dataset again") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path} is corrupt (a JSON object expected); collect the dataset again")
    if card.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {card.get('format_version')!r}, this reader handles "
                         f"{FORMAT_VERSION}")
    return card


def read_dataset(directory: str) -> tuple[list[dict[str, np.ndarray]], dict]:
    """``(episodes by task, card)``: ``episodes[i]`` has the episode arrays and ``params`` (a dict)."""
    card = read_card(directory)
    episodes = []
    for task in card["tasks"]:
        path = os.path.join(directory, task["file"])
        try:
            with np.load(path) as data:
                ep = {k: data[k] for k in data.files if not k.startswith(PARAMS_PREFIX)}
                ep["params"] = {k[len(PARAMS_PREFIX):]: data[k] for k in data.files if k.startswith(PARAMS_PREFIX)}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is corrupt or missing ({type(error).__name__}: {error}); collect the dataset "
                             "again") from None
        episodes.append(ep)
    return episodes, card


def mix_episodes(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], fraction_a: float,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Episodes of one task: ``round(fraction_a * N)`` drawn from ``a``, the rest from ``b`` (N = len(a)).

    Used for the ``medium_expert`` quality (70% medium, 30% expert in Meta-DT's datasets).
    """
    n = a["rewards"].shape[0]
    n_a = int(round(fraction_a * n))
    idx_a = rng.choice(a["rewards"].shape[0], n_a, replace=False)
    idx_b = rng.choice(b["rewards"].shape[0], n - n_a, replace=False)
    return {k: np.concatenate([np.asarray(a[k])[idx_a], np.asarray(b[k])[idx_b]])
            for k in EPISODE_KEYS if k in a and k in b}
