"""World-model memory benchmarks (S4WM, Deng et al. 2023): train a world model offline on random-policy
episodes of a memory env and measure what it remembers.

Each dataset column is one whole episode (every memory env has a fixed episode length), rows
``(obs_t, a_t, r_t, term_t, first_t)`` as in the replay. Metrics, on held-out episodes:

* ``reward_accuracy`` (Distracting Memory): is the predicted reward of the final choice within 0.5 of
  the true one, with the model observing every frame (``inference``, the posterior) or observing only
  the first ``context`` frames and imagining the rest from the actions (``imagination``, the prior);
* ``generation_error`` (Multi Doors Keys, Four Rooms): squared error per frame (pixels in [0, 1],
  summed over the frame) of frames imagined open-loop after ``context`` observed ones.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl import envs
from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model.agent import Parts, build, init_params, open_loop_predictions
from ssmrl.agents.world_model.networks import preprocess
from ssmrl.agents.world_model.world_model import world_model_loss


def random_episodes(parts: Parts, key: jax.Array, num_episodes: int) -> dict:
    """``num_episodes`` whole random-policy episodes: ``{obs [T, N, *obs_shape], action, reward, term, first [T, N]}``
    with ``T`` the env's ``episode_length``."""
    env, params = parts.env, parts.env_params
    length = env.episode_length
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_episodes), params)

    def body(carry, key):
        obs, state = carry
        k_act, k_step = jax.random.split(key)
        action = jax.random.randint(k_act, (num_episodes,), 0, parts.num_actions)
        next_obs, state, reward, term, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, num_episodes), state, action, params)
        return (next_obs, state), (obs, action, reward.astype(jnp.float32), term)

    _, (obs, action, reward, term) = jax.lax.scan(body, (obs, state), jax.random.split(k_run, length))
    first = jnp.zeros((length, num_episodes), bool).at[0].set(True)
    return {"obs": obs, "action": action, "reward": reward, "term": term, "first": first}


def episodes(parts: Parts, key: jax.Array, train_episodes: int, test_episodes: int) -> tuple[dict, dict]:
    """A seed's training and held-out episodes; the held-out ones do not depend on ``train_episodes``."""
    k_train, k_test = jax.random.split(key)
    return random_episodes(parts, k_train, train_episodes), random_episodes(parts, k_test, test_episodes)


def sample_episodes(data: dict, key: jax.Array, batch: int) -> dict:
    """``batch`` episodes (columns) of ``data`` drawn uniformly with replacement."""
    columns = jax.random.randint(key, (batch,), 0, data["action"].shape[1])
    return {name: value[:, columns] for name, value in data.items()}


def make_update(parts: Parts) -> Callable:
    """``update(params, opt, batch, key) -> (params, opt, metrics)``: one world-model gradient step."""

    def update(params, opt, batch, key):
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(
            params, parts.wm, parts.config, batch, key)
        updates, opt = parts.wm_tx.update(grads, opt, params)
        return jax.tree.map(jnp.add, params, updates), opt, metrics

    return update


def reward_accuracy(parts: Parts, params, data: dict, context: int, key: jax.Array) -> dict:
    """Accuracy of the final step's predicted reward over the episodes of ``data``, observing every frame
    (``inference``) and imagining after ``context`` frames (``imagination``)."""
    T = data["action"].shape[0]
    k_full, k_imag = jax.random.split(key)
    _, full = open_loop_predictions(parts, params, data["obs"], data["action"], data["first"], T, k_full)
    _, imag = open_loop_predictions(parts, params, data["obs"], data["action"], data["first"], context, k_imag)
    truth = data["reward"][-1]
    return {mode: jnp.mean(jnp.abs(parts.wm.reward_value(logits[-1]) - truth) < 0.5)
            for mode, logits in (("inference", full), ("imagination", imag))}


def generation_error(parts: Parts, params, data: dict, context: int, key: jax.Array) -> jax.Array:
    """Squared error per frame ``[T, B]`` (pixels in [0, 1], summed over each frame) of the frames imagined
    after ``context`` observed ones; the first ``context`` entries are reconstruction errors."""
    frames, _ = open_loop_predictions(parts, params, data["obs"], data["action"], data["first"], context, key)
    axes = tuple(range(2, frames.ndim))
    return jnp.sum((frames - preprocess(data["obs"])) ** 2, axis=axes)


# Each benchmark: its env, what is measured, and how many frames the model observes before imagining.
# Sizes are env options (``SIZE_OPTION``); the paper's are widths 100 / 200 / 400 and 3 / 5 / 7 keys.
BENCHMARKS = {
    "distracting": dict(env="memory/DistractingMemory", metric="reward_accuracy", context=2),
    "doors_keys": dict(env="memory/MultiDoorsKeys", metric="generation_error",
                       context_from="num_keys"),
    "four_rooms": dict(env="memory/FourRooms", metric="generation_error", context_fraction=0.5),
}
# Backbones as (world-model kind, S4WM block layer): Drama (Mamba-2), S4WM with S4 / S5 / a causal
# transformer block, and the GRU RSSM.
BACKBONES = {"drama": ("drama", "s4"), "s4wm_s4": ("s4wm", "s4"), "s4wm_s5": ("s4wm", "s5"),
             "transformer": ("s4wm", "transformer"), "rssm": ("rssm", "s4")}
SMALL_WORLD_MODEL = dict(hidden=64, num_layers=2, state_size=16, latent_groups=8, latent_classes=8,
                         channels=(16, 32, 32), kernel=4, mlp_hidden=128, mlp_layers=1, wm_lr=1e-3, free_bits=1.0,
                         twohot_range=1.0, batch_size=16)


# Sizes per benchmark and preset: ``cpu`` fits the 2-core CPU (the table in docs/RESULTS.md), ``paper`` is S4WM's
# (widths 100 / 200 / 400, 3 / 5 / 7 keys behind a 100-frame hallway, 500-step Four Rooms, 64x64 frames). The
# memoryless plateau of Distracting Memory lasts ~500-2000 updates at width 2 (RESULTS.md): its longer budget.
PRESETS = {
    "cpu": dict(sizes={"distracting": [2, 8], "doors_keys": [2], "four_rooms": [16]},
                updates={"distracting": 2500, "doors_keys": 1000, "four_rooms": 1000},
                train_episodes=256, test_episodes=128, env={"doors_keys": {"width": 4}}, image=16),
    "paper": dict(sizes={"distracting": [100, 200, 400], "doors_keys": [3, 5, 7], "four_rooms": [500]},
                  updates={"distracting": 20000, "doors_keys": 20000, "four_rooms": 20000},
                  train_episodes=2048, test_episodes=256, env={"doors_keys": {"width": 100}}, image=64),
}


def preset_env_options(preset: str, benchmark: str, size: int) -> dict:
    """The env options of one benchmark at one size under ``preset``: its size option, the preset's fixed ones,
    and the frame size (Four Rooms draws a 5-cell window, hence its cell of a fifth of the image)."""
    spec = PRESETS[preset]
    options = {**spec["env"].get(benchmark, {}), SIZE_OPTION[benchmark]: size}
    if benchmark == "four_rooms":
        options["cell"] = max(1, spec["image"] // 5)
    else:
        options["size"] = spec["image"]
    return options


def make_config(benchmark: str, backbone: str, env_options: dict, world_model: dict | None = None):
    """``(env, config)``: the benchmark's env and the validated world-model config of ``backbone`` on it, one whole
    episode per batch column. Unknown names are refused with the valid ones."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: {sorted(BENCHMARKS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {sorted(BACKBONES)}")
    spec = BENCHMARKS[benchmark]
    kind, layer = BACKBONES[backbone]
    env, _ = envs.make(spec["env"], **env_options)
    length = env.episode_length
    # the transformer's attention window covers the whole episode (it is 64 steps by default)
    window = {"layer_options": (("memory", max(64, length)),)} if layer == "transformer" else {}
    config = wmc.validate(wmc.preset(
        "small", env_name=spec["env"], env_options=tuple(sorted(env_options.items())), model=kind, s4wm_layer=layer,
        batch_length=length, prefill=length, imag_context=2, **{**SMALL_WORLD_MODEL, **window, **(world_model or {})}))
    return env, config


def context_length(benchmark: str, env) -> int:
    """Frames observed before imagination: the cue and one hallway frame; every key offer and one hallway
    frame; half of a Four Rooms episode."""
    spec = BENCHMARKS[benchmark]
    if "context_from" in spec:
        return getattr(env, spec["context_from"]) + 1
    if "context_fraction" in spec:
        return int(env.episode_length * spec["context_fraction"])
    return spec["context"]


def run(benchmark: str, backbone: str, env_options: dict, seeds: int, updates: int, train_episodes: int,
        test_episodes: int, world_model: dict | None = None, seed: int = 0, eval_every: int = 0) -> list[dict]:
    """Train one backbone on one benchmark for ``seeds`` seeds and measure it on held-out episodes. The data of a
    seed depends on the seed only, so every backbone sees the same episodes.

    Seeds run one after another through the same compiled functions, not vmapped: vmapped over seeds, the
    update ran ~9x slower per seed on XLA CPU (2 seeds at width 2: 0.65 s per update against 37 ms for one;
    per-seed conv kernels make grouped convolutions, the likely cause, not profiled).

    ``eval_every > 0`` also measures the held-out episodes every ``eval_every`` updates (with the final key, so
    the training run is the same with or without it) into ``curve``: when a backbone left the memoryless plateau.

    Returns one result per seed: the metric(s), the last 20 updates' mean losses, the sizes."""
    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0 (0: only at the end), got {eval_every}")
    env, config = make_config(benchmark, backbone, env_options, world_model)
    parts = build(config)
    context = context_length(benchmark, env)
    one_update = make_update(parts)

    data = jax.jit(lambda key: episodes(parts, key, train_episodes, test_episodes))

    # a host loop over a donated, jitted update: XLA CPU's while-loop copied donated buffers every iteration
    @partial(jax.jit, donate_argnums=(0, 1))
    def update(params, opt, train, key):
        k_batch, k_loss = jax.random.split(key)
        return one_update(params, opt, sample_episodes(train, k_batch, config.batch_size), k_loss)

    if BENCHMARKS[benchmark]["metric"] == "reward_accuracy":
        measure = jax.jit(lambda p, d, k: reward_accuracy(parts, p, d, context, k))
    else:
        measure = jax.jit(lambda p, d, k: {"error": generation_error(parts, p, d, context, k)})
    mask = _door_mask(benchmark, env)
    results = []
    for s in range(seed, seed + seeds):
        key = jax.random.PRNGKey(s)
        train, test = data(jax.random.fold_in(key, 0))
        params = init_params(parts, jax.random.fold_in(key, 1))["wm"]
        opt = parts.wm_tx.init(params)

        def evaluate(params):
            measured = jax.device_get(measure(params, test, jax.random.fold_in(key, 3)))
            return _summary(measured, context, mask, test["reward"])

        fit_key, losses, curve = jax.random.fold_in(key, 2), [], []
        for i in range(updates):
            params, opt, metrics = update(params, opt, train, jax.random.fold_in(fit_key, i))
            if i >= updates - 20:
                losses.append(jax.device_get(metrics))
            if eval_every and (i + 1) % eval_every == 0 and i + 1 < updates:
                point = evaluate(params)
                curve.append({"update": i + 1, **{m: point[m] for m in HEADLINE[benchmark]}})
        result = {"benchmark": benchmark, "backbone": backbone, "seed": s, "env_options": env_options,
                  "episode_length": env.episode_length, "context": context, "updates": updates,
                  "final_losses": {k: float(np.mean([m[k] for m in losses])) for k in losses[0]},
                  **evaluate(params)}
        if eval_every:
            result["curve"] = curve
        results.append(result)
    return results


HOLD = "hold_last_frame"


def hold_last_frame(benchmark: str, env_options: dict, seeds: int, test_episodes: int, seed: int = 0) -> list[dict]:
    """The reference a generation error is read against: the held-out episodes of :func:`run` (same seeds) with the
    last observed frame repeated for every imagined one, which is what a model that imagines no change scores.
    One result per seed, as :func:`run`'s with ``backbone`` ``HOLD`` and no training."""
    if BENCHMARKS.get(benchmark, {}).get("metric") != "generation_error":
        valid = sorted(b for b, spec in BENCHMARKS.items() if spec["metric"] == "generation_error")
        raise ValueError(f"{HOLD} is a reference for frame generation; got benchmark {benchmark!r}, valid: {valid}")
    env, config = make_config(benchmark, "rssm", env_options)
    parts = build(config)
    context = context_length(benchmark, env)

    @jax.jit
    def measure(key):
        test = episodes(parts, key, 1, test_episodes)[1]
        frames = preprocess(test["obs"])
        held = jnp.concatenate([frames[:context], jnp.broadcast_to(frames[context - 1], frames[context:].shape)])
        return test["reward"], jnp.sum((held - frames) ** 2, axis=tuple(range(2, frames.ndim)))

    mask = _door_mask(benchmark, env)
    results = []
    for s in range(seed, seed + seeds):
        reward, error = jax.device_get(measure(jax.random.fold_in(jax.random.PRNGKey(s), 0)))
        results.append({"benchmark": benchmark, "backbone": HOLD, "seed": s, "env_options": env_options,
                        "episode_length": env.episode_length, "context": context, "updates": 0,
                        **_summary({"error": error}, context, mask, reward)})
    return results


def _door_mask(benchmark: str, env) -> np.ndarray | None:
    """Multi Doors Keys' door frames ``[T]`` (where its door errors are read); None for the other benchmarks."""
    return np.asarray(env.frame_mask()) if benchmark == "doors_keys" else None


def _summary(measured: dict, context: int, mask: np.ndarray | None, reward: jax.Array) -> dict:
    """The result's metrics from ``measure``'s output: accuracies as they are; generation errors ``[T, B]`` as the
    per-step mean, the imagined frames' mean and, with a Multi Doors Keys ``mask`` ``[T]``, the door frames'."""
    if "error" not in measured:
        return {k: float(v) for k, v in measured.items()}
    error = np.asarray(measured["error"])
    result = {"error_per_step": error.mean(1).tolist(), "imagination_error": float(error[context:].mean())}
    if mask is not None:
        # an outcome frame shows an open door when the action before it opened one (reward 1)
        opened = mask[:, None] & np.roll(np.asarray(reward) > 0, 1, axis=0)
        result["door_error"] = float(error[mask].mean())
        result["open_door_error"] = float(error[opened].mean()) if opened.any() else float("nan")
    return result


SIZE_OPTION = {"distracting": "width", "doors_keys": "num_keys", "four_rooms": "length"}
HEADLINE = {"distracting": ("inference", "imagination"), "doors_keys": ("door_error", "open_door_error"),
            "four_rooms": ("imagination_error",)}
PAPER = {  # S4WM paper: Distracting Memory accuracy (widths 100/200/400), Multi Doors Keys MSE (3/5/7 keys)
    ("distracting", "s4wm_s4"): "100% / 100% / 100%", ("distracting", "rssm"): "~50% at every width",
    ("doors_keys", "rssm"): "5.16 / 6.36 / 6.28", ("doors_keys", "transformer"): "1.27 / 6.05 / 9.24",
    ("doors_keys", "s4wm_s4"): "0.04 / 0.27 / 0.10",
}


def table(results: list[dict]) -> str:
    """Markdown: one row per benchmark x size x backbone, mean [95% CI] over seeds of each headline metric."""
    from ssmrl.experiment.statistics import interval_estimates

    groups: dict[tuple, list[dict]] = {}
    for r in results:
        size = r["env_options"][SIZE_OPTION[r["benchmark"]]]
        groups.setdefault((r["benchmark"], size, r["backbone"]), []).append(r)
    lines = ["| benchmark | size | backbone | seeds | metric: mean [95% CI] | paper |", "|---|---|---|---|---|---|"]
    for (benchmark, size, backbone), rows in sorted(groups.items()):
        cells = []
        for metric in HEADLINE[benchmark]:
            scores = np.array([[r[metric]] for r in rows], np.float64)
            if len(rows) > 1 and np.isfinite(scores).all():
                estimate = interval_estimates({backbone: scores}, ("mean",), reps=2000)[backbone]["mean"]
                cells.append(f"{metric} {estimate}")
            else:
                cells.append(f"{metric} {np.nanmean(scores):.3f}")
        lines.append(f"| {benchmark} | {size} | {backbone} | {len(rows)} | {'; '.join(cells)} | "
                     f"{PAPER.get((benchmark, backbone), '')} |")
    return "\n".join(lines) + "\n"
