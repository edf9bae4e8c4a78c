"""popjaxrl's PPO-S5 and PPO-GRU timed in this process, from a checkout of its repository, for bench/ppo_popgym.py.

    git clone https://github.com/luchris429/popjaxrl /path/to/popjaxrl
    python bench/ppo_popgym.py --models s5 gru --popjaxrl /path/to/popjaxrl

popjaxrl is not a package and was written for older jax, flax and gymnax. Its code runs unmodified; four names it
expects from those versions are given back for the run (the only changes, all in this process):

* gymnax 1.x's ``Environment.step`` returns ``(obs, state, reward, terminated, truncated, info)`` and reads
  ``state.time``; popjaxrl's wrappers unpack gymnax 0.0.x's five values and its envs count ``state.timestep``. The
  timed env (RepeatPrevious) gets the 0.0.x auto-reset step: ``step_env``, then the reset state where done.
* ``gymnax.wrappers.purerl`` no longer re-exports the typing / chex / ``environment`` / ``spaces`` names popjaxrl's
  wrappers import from it.
* ``jax.numpy.DeviceArray`` (a type annotation in its ``s5.py``) is ``jax.Array`` now.
* flax's ``GRUCell`` needs ``features`` and has a new ``initialize_carry``: popjaxrl's GRU is 256 wide, its carry
  zeros, as before.

Settings are ours (bench/ppo_popgym.py's, popjaxrl's paper sizes): RepeatPreviousEasy, 16 envs x 128 steps,
2 epochs x 2 minibatches by default (bench/gpu.py: the paper's 64 x 1024, 30 x 8), lr 5e-5, gamma 0.99,
lambda 1, clip 0.2, no entropy bonus, 4 S5 layers of width and state 256. One call of popjaxrl's ``train`` is
its initialisation and ``updates`` updates, jitted; env-steps/s is the median over ``repeats`` calls after one warm-up.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import time
import types
import typing
from pathlib import Path

MODELS = ("s5", "gru")
URL = "https://github.com/luchris429/popjaxrl"
ENV = "RepeatPreviousEasy"


def check_checkout(path: str) -> Path:
    """The checkout's root, or a ValueError naming the path and what it lacks (no jax work done)."""
    root = Path(path).expanduser().resolve()
    missing = [f for f in ("algorithms/ppo_s5.py", "algorithms/ppo_gru.py", "envs/registration.py")
               if not (root / f).is_file()]
    if missing:
        raise ValueError(f"--popjaxrl {path!r}: no {', '.join(missing)} there; expected a checkout of {URL}")
    return root


def check_env(env_name: str) -> None:
    """Only RepeatPrevious gets gymnax 0.0.x's step back (``load``), so only RepeatPreviousEasy can be timed."""
    if env_name != ENV:
        raise ValueError(f"the popjaxrl baseline runs {ENV!r} only (the env whose step is adapted), not {env_name!r}")


def _import_package(name: str, root: Path) -> types.ModuleType:
    """Import the checkout's top-level package ``name`` (``envs``, ``algorithms``) without touching sys.path."""
    if name in sys.modules:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if Path(module_file).resolve().parent != root / name:
            raise ValueError(f"a package named {name!r} is already imported from {module_file!r}, not {root / name}")
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / name / "__init__.py",
                                                  submodule_search_locations=[str(root / name)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _old_gymnax_step(self, key, state, action, params=None):
    """gymnax 0.0.x's step: ``step_env``, then the reset state and observation where the episode ended."""
    import jax

    params = self.default_params if params is None else params
    key, key_reset = jax.random.split(key)
    obs_step, state_step, reward, done, info = self.step_env(key, state, action, params)
    obs_reset, state_reset = self.reset_env(key_reset, params)
    state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), state_reset, state_step)
    return jax.lax.select(done, obs_reset, obs_step), state, reward, done, info


def load(root: Path) -> dict:
    """popjaxrl's ``make_train`` per model, its env and its action wrapper, with the names above given back."""
    import chex
    import flax.linen as nn
    import gymnax.wrappers.purerl as purerl
    import jax
    import jax.numpy as jnp
    from gymnax.environments import environment, spaces

    for name, value in dict(Optional=typing.Optional, Tuple=typing.Tuple, Union=typing.Union,
                            partial=functools.partial, chex=chex, environment=environment, spaces=spaces).items():
        if not hasattr(purerl, name):
            setattr(purerl, name, value)
    if not hasattr(jnp, "DeviceArray"):
        jnp.DeviceArray = jax.Array
    # popjaxrl's training modules import wandb for their optional logging only (off here): a stub where it is absent
    if importlib.util.find_spec("wandb") is None:
        sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    _import_package("envs", root)
    _import_package("algorithms", root)
    registry = importlib.import_module("envs")
    importlib.import_module("envs.environments.popgym_repeat_previous").RepeatPrevious.step = _old_gymnax_step
    ppo_gru = importlib.import_module("algorithms.ppo_gru")
    # ppo_gru calls `nn.GRUCell()` at trace time: give that module a linen namespace whose GRUCell is 256 wide
    ppo_gru.nn = types.SimpleNamespace(**{k: getattr(nn, k) for k in dir(nn) if not k.startswith("__")})
    ppo_gru.nn.GRUCell = functools.partial(nn.GRUCell, features=256)
    ppo_gru.ScannedRNN.initialize_carry = staticmethod(lambda batch, width: jnp.zeros((batch, width)))
    return dict(make=registry.make, wrapper=importlib.import_module("envs.wrappers").AliasPrevActionV2,
                make_train=dict(s5=importlib.import_module("algorithms.ppo_s5").make_train,
                                gru=ppo_gru.make_train))


def _config(popjaxrl: dict, env_name: str, updates: int, num_envs: int, num_steps: int, epochs: int,
            minibatches: int) -> dict:
    env, env_params = popjaxrl["make"](env_name)
    return {"LR": 5e-5, "NUM_ENVS": num_envs, "NUM_STEPS": num_steps, "TOTAL_TIMESTEPS": num_envs * num_steps * updates,
            "UPDATE_EPOCHS": epochs, "NUM_MINIBATCHES": minibatches, "GAMMA": 0.99, "GAE_LAMBDA": 1.0, "CLIP_EPS": 0.2,
            "ENT_COEF": 0.0, "VF_COEF": 1.0, "MAX_GRAD_NORM": 0.5, "ENV": popjaxrl["wrapper"](env),
            "ENV_PARAMS": env_params, "ANNEAL_LR": False, "DEBUG": False, "S5_D_MODEL": 256, "S5_SSM_SIZE": 256,
            "S5_N_LAYERS": 4, "S5_BLOCKS": 1, "S5_ACTIVATION": "full_glu", "S5_DO_NORM": False,
            "S5_PRENORM": False, "S5_DO_GTRXL_NORM": False}


def bench_popjaxrl(popjaxrl: dict, model: str, *, env_name: str = ENV, updates: int = 16, repeats: int = 3,
                   num_envs: int = 16, num_steps: int = 128, epochs: int = 2, minibatches: int = 2) -> dict:
    """``{"steps_per_s", "compile_s", "gflop_per_update"}`` of popjaxrl's one-seed ``train`` for ``model`` (``s5``
    or ``gru``); FLOPs counted as ours are (bench/hlo_flops.py, every loop body per iteration)."""
    import jax
    import numpy as np
    from hlo_flops import loop_aware_flops

    check_env(env_name)
    train = jax.jit(popjaxrl["make_train"][model](_config(popjaxrl, env_name, updates, num_envs, num_steps, epochs,
                                                          minibatches)))
    t0 = time.perf_counter()
    compiled = train.lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.PRNGKey(0)))
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.PRNGKey(r + 1)))
        times.append(time.perf_counter() - t0)
    return dict(steps_per_s=num_envs * num_steps * updates / float(np.median(times)), compile_s=compile_s,
                gflop_per_update=loop_aware_flops(compiled.as_text()) / updates / 1e9)
