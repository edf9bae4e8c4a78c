"""Bad inputs on every entry point and on the Python API: each is refused with a message that names the
bad value (and the valid ones where there is a choice), before anything compiles.

The entry-point cases compose the script's Hydra config with the overrides a user would type and read it
with ``experiment.config.parse``, as the script's ``main`` does first; two run the real script to show the
command line ends with one line and exit status 2 before any training. The layer cases only trace
(``jax.eval_shape``): the contract is checked while JAX traces, so nothing needs compiling.
"""

import argparse
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ssmrl import envs, ssm
from ssmrl.agents.config import describe, from_fields
from ssmrl.agents.ppo.config import PPOConfig, from_mapping, validate
from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.probe import layer_option
from ssmrl.experiment import presets
from ssmrl.experiment.config import CONFIGS, ENTRIES, SET_BY_SCRIPT, help_text, parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration")

envs.available(), ssm.available()  # the registries import their modules (and any module-level arrays) once


@pytest.fixture
def no_compile():
    """Fails the test if anything was lowered or compiled while it ran."""
    events = []

    def listen(name, duration, **kwargs):
        if name in COMPILE_EVENTS:
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield
    jax.monitoring.unregister_event_duration_listener(listen)
    assert not events, f"compiled while checking a bad input: {events}"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """A folder that passes the offline scripts' check that their dataset is there (its cards only)."""
    root = tmp_path_factory.mktemp("datasets")
    for split in ("train", "test"):
        (root / split / "expert").mkdir(parents=True)
        (root / split / "expert" / "card.json").write_text("{}")
    return str(root)


def _parse(script, overrides, dataset_dir=None):
    if script in ("dt", "meta_dt") and dataset_dir is not None:
        overrides = [f"dataset_dir={dataset_dir}", *overrides]
    with initialize_config_dir(config_dir=os.path.join(CONFIGS, script), version_base="1.3"):
        cfg = compose(script, overrides=list(overrides))
    return parse(script, cfg)


MODELS = r"valid: \['gru', 'linear_attention', .*'s5', 'transformer'\]"
TASKS = r"valid: \['tasks/ant_dir', .*'tasks/point_robot', 'tasks/walker_params'\]"
DATASETS = r"valid: \['medium', 'expert', 'medium_expert', 'random'\]"

CLI = [
    # train/ppo.py
    ("ppo", ["anneal_lr=maybe"], r"anneal_lr must be true or false, got 'maybe'"),
    ("ppo", ["resume=1"], r"resume must be true or false, got 1"),
    ("ppo", ["seed=abc"], r"seed must be an integer, got 'abc'"),
    ("ppo", ["seed=-1"], r"seed must be >= 0, got -1"),
    ("ppo", ["total_timesteps=1e6"], r"total_timesteps must be an integer, got 1000000.0"),
    ("ppo", ["lr=inf"], r"lr must be a finite number, got inf"),
    ("ppo", ["lr=nan"], r"lr must be a finite number, got nan"),
    ("ppo", ["lr=-0.001"], r"lr must be > 0, got -0.001"),
    ("ppo", ["lr=fast"], r"lr must be a number, got 'fast'"),
    ("ppo", ["gamma=1.5"], r"gamma must be <= 1, got 1.5"),
    ("ppo", ["num_envs=0"], r"num_envs must be >= 1, got 0"),
    ("ppo", ["num_envs=6", "num_minibatches=4"], r"num_envs \(6\) must be divisible by num_minibatches \(4\)"),
    ("ppo", ["seeds=0"], r"seeds must be >= 1, got 0"),
    ("ppo", ["logger=mlflow"], r"unknown logger 'mlflow'; valid: \['tensorboard', 'wandb'\]"),
    ("ppo", ["model.name=s6"], rf"unknown model.name 's6'; {MODELS}"),
    ("ppo", ["model.features=wide"], r"model.features must be an integer, got 'wide'"),
    ("ppo", ["model.options.state_size=-4"], r"model.options.state_size of 's5' must be a positive integer, got -4"),
    ("ppo", ["model.options.state_size=2.5"], r"model.options.state_size of 's5' must be int, got 2.5"),
    ("ppo", ["+model.options.state_sise=4"], r"unknown model.options \['state_sise'\] for sequence model 's5'; "
                                             r"valid: \['state_size', "),
    ("ppo", ["env.name=RepeatPreviousEasyy"], r"unknown env.name 'RepeatPreviousEasyy'; valid: .*'RepeatPreviousEasy'"),
    ("ppo", ["+env.options.foo=1"], r"unknown env.options \['foo'\] for environment 'RepeatPreviousEasy'; valid: \[\]"),
    ("ppo", ["+env.foo=1"], r"unknown config key 'env.foo'; valid under env: \['name', 'options'\]"),
    ("ppo", ["+learning_rate=0.1"], r"unknown config key 'learning_rate'; valid: \[.*'lr', .*\]"),
    # train/world_model.py
    ("world_model", ["model=s4wm", "model.layer=s6"], rf"unknown model.layer 's6'; {MODELS}"),
    ("world_model", ["decoder=deconv"], r"unknown decoder 'deconv'; valid: \['subpixel', 'conv_transpose'\]"),
    ("world_model", ["conv_weight_grad=fast"], r"unknown conv_weight_grad 'fast'; valid: \['matmul', 'xla'\]"),
    ("world_model", ["sampler=prioritized"], r"unknown sampler 'prioritized'; valid: \['uniform', 'dfs'\]"),
    ("world_model", ["channels=[3]"], r"channels must list >= 2 positive integers, got \[3\]"),
    ("world_model", ["channels=[8,x]"], r"channels\[1\] must be an integer, got 'x'"),
    ("world_model", ["prefill=10"], r"prefill \(10\) must be >= batch_length \(32\)"),
    ("world_model", ["unimix=1.0"], r"unimix must be < 1, got 1.0"),
    ("world_model", ["env.name=atari/Pongg"], r"unknown env.name 'atari/Pongg'; valid: .*'atari/Pong'"),
    ("world_model", ["+model.depth=3"], r"unknown config key 'model.depth'; valid under model: "
                                        r"\['layer', 'name', 'options', 'state_size'\]"),
    ("world_model", ["model=rssm", "+model.options.dt_min=0.1"], r"model.options \{'dt_min': 0.1\} set for the rssm"),
    ("world_model", ["model=s4wm", "+model.options.num_layers=3"], r"model.options \['num_layers'\] are set by the "
                                                                   r"world model"),
    ("world_model", ["model=s4wm", "model.layer=s5", "+model.options.dt=3"], r"unknown model.options \['dt'\] for "
                                                                             r"sequence model 's5'; valid: \["),
    # train/dt.py
    ("dt", ["target_return=abc"], r"target_return must be a number, got 'abc'"),
    ("dt", ["target_return=inf"], r"target_return must be a finite number, got inf"),
    ("dt", ["dataset=best"], rf"unknown dataset 'best'; {DATASETS}"),
    ("dt", ["model=s6"], rf"unknown model 's6'; {MODELS}"),
    ("dt", ["model=s5", "+model_options.state_sise=4"], r"unknown model_options \['state_sise'\] for sequence model "
                                                        r"'s5'; valid: \['state_size', "),
    ("dt", ["dt.dropout=1.0"], r"dt.dropout must be < 1, got 1.0"),
    ("dt", ["dt.features=63", "dt.num_heads=2"], r"dt.features \(63\) must be divisible by dt.num_heads \(2\)"),
    ("dt", ["dt.warmup_steps=-1"], r"dt.warmup_steps must be >= 0, got -1"),
    ("dt", ["env.name=tasks/pointrobot"], rf"unknown env.name 'tasks/pointrobot'; {TASKS}"),
    ("dt", ["+dt.learning_rate=1"], r"unknown config key 'dt.learning_rate'; valid under dt: \[.*'lr', .*\]"),
    ("dt", ["dataset=medium"], r"dataset_dir='.*' holds no 'medium' dataset \(.*train/medium has no card.json\); "
                               r"train/collect.py dataset_dir=.* writes one"),
    # train/meta_dt.py
    ("meta_dt", ["method=mdt"], r"unknown method 'mdt'; valid: \['meta_dt', 'prompt_dt'\]"),
    ("meta_dt", ["meta.task_context=taks"], r"unknown meta.task_context 'taks'; valid: \['own', 'task'\]"),
    ("meta_dt", ["meta.prompt_dropout=1.5"], r"meta.prompt_dropout must be < 1, got 1.5"),
    ("meta_dt", ["world_model.encoder=transformerx"], rf"unknown world_model.encoder 'transformerx'; {MODELS}"),
    ("meta_dt", ["world_model.reward_weight=0", "world_model.state_weight=0"],
     r"world_model.reward_weight \+ world_model.state_weight must be > 0"),
    ("meta_dt", ["world_model.lr=inf"], r"world_model.lr must be a finite number, got inf"),
    ("meta_dt", ["world_model_extra_datasets=[randomm]"], rf"unknown world_model_extra_datasets 'randomm'; {DATASETS}"),
    # train/collect.py
    ("collect", ["episodes_per_task=0"], r"episodes_per_task must be >= 1, got 0"),
    ("collect", ["env.name=RepeatPreviousEasy"], rf"unknown env.name 'RepeatPreviousEasy' for collection; {TASKS}"),
    ("collect", ["medium_level=2"], r"medium_level must be <= 1, got 2.0"),
    ("collect", ["deterministic=maybe"], r"deterministic must be true or false, got 'maybe'"),
    ("collect", ["+model.options.num_layers=0"], r"model.options.num_layers of 'mlp' must be a positive integer"),
    # train/evaluate.py
    ("evaluate", ["run=/nonexistent/run"], r"run='/nonexistent/run' is not a directory; pass run=<a run directory>"),
    ("evaluate", [], r"run='' is not a directory"),
    ("evaluate", ["run=/tmp", "episodes=0"], r"episodes must be >= 1, got 0"),
    ("evaluate", ["run=/tmp", "video=maybe"], r"video must be true or false, got 'maybe'"),
    ("evaluate", ["run=/tmp", "+policy=greedy"], r"unknown config key 'policy'"),
]


@pytest.mark.parametrize("script,overrides,message", CLI, ids=[f"{s}:{' '.join(o)}" for s, o, _ in CLI])
def test_entry_point_refuses(script, overrides, message, dataset_dir, no_compile):
    with pytest.raises(ValueError, match=message):
        _parse(script, overrides, dataset_dir)


def test_a_group_choice_that_does_not_exist_names_the_valid_ones():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=r"(?s)'model/s6'.*Available options in 'model':.*\bs5\b"):
        _parse("ppo", ["model=s6"])
    with pytest.raises(SystemExit, match=r"unknown preset 'big'; valid: \['auto', 'full', 'small', 'paper'\]"):
        presets.select(["preset=big"], os.path.join(CONFIGS, "ppo", "preset"), {"paper": "full"}, accelerated=False)


def _layer(name):
    """A registry layer, its abstract params and carry for x [5, 3, 8], traced only (nothing runs)."""
    options = {"state_size": 4} if "state_size" in ssm.options(name) else {}
    layer = ssm.make(name, features=8, **options)
    x, resets = jax.ShapeDtypeStruct((5, 3, 8), jnp.float32), jax.ShapeDtypeStruct((5, 3), jnp.bool_)
    params = jax.eval_shape(layer.init, jax.ShapeDtypeStruct((2,), jnp.uint32), x, resets)  # an abstract key
    carry = jax.eval_shape(lambda: layer.initialize_carry(3))
    return layer, params, carry


def _apply(layer, params, method, *args):
    return jax.eval_shape(lambda p, *a: layer.apply(p, *a, method=method), params, *args)


def _array(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


@pytest.mark.parametrize("name", ssm.available())
def test_every_layer_checks_its_contract(name, no_compile):
    layer, params, carry = _layer(name)
    x, resets = _array((5, 3, 8)), _array((5, 3), jnp.bool_)
    # The bug this guards against: a rank-2 x with an explicit carry gave a [T, T, H] output.
    with pytest.raises(ValueError, match=r"scan: x must be \[T, B, H\], got shape \[5, 8\]"):
        _apply(layer, params, "scan", carry, _array((5, 8)), _array((5,), jnp.bool_))
    with pytest.raises(TypeError, match=r"scan: resets must be \[T, B\] bool .*got dtype float32"):
        _apply(layer, params, "scan", carry, x, _array((5, 3)))
    with pytest.raises(ValueError, match=r"scan: resets must be \[T, B\] = \[5, 3\], got shape \[4, 3\]"):
        _apply(layer, params, "scan", carry, x, _array((4, 3), jnp.bool_))
    small = jax.eval_shape(lambda: layer.initialize_carry(2))
    if jax.tree.leaves(small):  # the MLP keeps no state
        with pytest.raises(ValueError, match=r"scan: the carry is for batch \[2\], x is \[T, B, H\] with B = 3"):
            _apply(layer, params, "scan", small, x, resets)
    with pytest.raises(ValueError, match=r"step: x must be \[B, H\], got shape \[8\]"):
        _apply(layer, params, "step", carry, _array((8,)), _array((3,), jnp.bool_))
    with pytest.raises(TypeError, match=r"step: resets must be \[B\] bool .*got dtype float32"):
        _apply(layer, params, "step", carry, _array((3, 8)), _array((3,)))
    with pytest.raises(TypeError, match=r"step: x must be \[B, H\] floating point, got dtype int32"):
        _apply(layer, params, "step", carry, _array((3, 8), jnp.int32), _array((3,), jnp.bool_))
    assert _apply(layer, params, "scan", carry, x, resets)[1].shape == (5, 3, 8)  # the right shapes still pass


API = [
    (lambda: ssm.make("s6", features=8), ValueError, rf"unknown sequence model 's6'; {MODELS}"),
    (lambda: ssm.make("s5", features=0), ValueError, r"features must be a positive int, got 0"),
    (lambda: ssm.make("s5", features=8, state_size=-4), ValueError,
     r"options.state_size of 's5' must be a positive integer, got -4"),
    (lambda: ssm.make("s5", features=8, dt_min=float("inf")), ValueError,
     r"options.dt_min of 's5' must be a finite number, got inf"),
    (lambda: ssm.make("gru", features=8, state_size=4), ValueError,
     r"unknown options \['state_size'\] for sequence model 'gru'; valid: \['num_layers'\]"),
    (lambda: envs.make("Nope"), ValueError, r"unknown environment 'Nope'; valid: .*'RepeatPreviousEasy'"),
    (lambda: envs.make("RepeatPreviousEasy", foo=1), ValueError,
     r"unknown options \['foo'\] for environment 'RepeatPreviousEasy'; valid: \[\]"),
    (lambda: validate(PPOConfig(lr=float("inf"))), ValueError, r"lr must be a finite number, got inf"),
    (lambda: validate(PPOConfig(anneal_lr="maybe")), ValueError, r"anneal_lr must be true or false, got 'maybe'"),
    (lambda: validate(PPOConfig(model="s6")), ValueError, rf"unknown model 's6'; {MODELS}"),
    (lambda: from_mapping({"learning_rate": 1e-3}), ValueError,
     r"unknown config key 'learning_rate'; valid: \[.*'lr'"),
    (lambda: from_fields(WorldModelConfig, {"channels": "wide"}), ValueError, r"channels must be a list, got 'wide'"),
    (lambda: from_fields(WorldModelConfig, {"env_options": 3}), ValueError,
     r"env_options must be a mapping of options, got 3"),
    (lambda: layer_option("dt_max"), argparse.ArgumentTypeError, r"'dt_max': expected NAME=VALUE, e.g. dt_max=0.01"),
]


@pytest.mark.parametrize("call,error,message", API, ids=[m[:40] for _, _, m in API])
def test_python_api_refuses(call, error, message, no_compile):
    with pytest.raises(error, match=message):
        call()


def test_enough_cases():
    # Entry-point cases, the group/preset test's two, every layer's seven and the Python API's.
    assert len(CLI) + 2 + 7 * len(ssm.available()) + len(API) >= 40


@pytest.mark.parametrize("script,override,message", [
    ("dt", "target_return=abc", "config error: target_return must be a number, got 'abc'"),
    ("collect", "episodes_per_task=0", "config error: episodes_per_task must be >= 1, got 0"),
])
def test_the_command_line_stops_with_one_line(tmp_path, script, override, message):
    """The probes that used to fail after a whole training run now stop first, with exit status 2."""
    out = subprocess.run([sys.executable, f"train/{script}.py", override, f"hydra.run.dir={tmp_path}",
                          f"dataset_dir={tmp_path}/data"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr.splitlines() and "Traceback" not in out.stderr
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "data" / "train").exists()


NO_CHECKOUT = ("error: --popjaxrl '{tmp}': no algorithms/ppo_s5.py, algorithms/ppo_gru.py, envs/registration.py "
               "there; expected a checkout of https://github.com/luchris429/popjaxrl")


@pytest.mark.parametrize("script,args,message", [
    ("ppo_popgym", ["--popjaxrl", "{tmp}"], NO_CHECKOUT),
    ("ppo_popgym", ["--popjaxrl", "{tmp}", "--env", "CountRecallEasy"],
     "error: the popjaxrl baseline runs 'RepeatPreviousEasy' only (the env whose step is adapted), "
     "not 'CountRecallEasy'"),
    ("gpu", ["--tiny", "--popjaxrl", "{tmp}", "--out", "{tmp}/out"], NO_CHECKOUT),
])
def test_the_benches_refuse_a_popjaxrl_baseline_they_cannot_run(tmp_path, script, args, message):
    """Before the matmul peak or any model is timed: one line, exit status 2."""
    out = subprocess.run([sys.executable, f"bench/{script}.py", *(a.format(tmp=tmp_path) for a in args)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.splitlines()[-1] == f"{script}.py: " + message.format(tmp=tmp_path)
    assert "Traceback" not in out.stderr and "peak" not in out.stdout and not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", sorted(ENTRIES))
def test_help_lists_only_the_scripts_own_keys_and_each_can_be_set(script):
    """``--help`` shows the script's own groups and keys; every key it shows is in the composed config,
    so ``key=value`` works without Hydra's ``+``."""
    with initialize_config_dir(config_dir=os.path.join(CONFIGS, script), version_base="1.3"):
        cfg = compose(script)
    text = help_text(script, cfg, "usage")
    assert ("  model" in text) == (script != "evaluate") and "hydra.run.dir" in text
    others = {"ppo": "meta_bandit", "world_model": "atari100k", "dt": "tasks/point_robot"}
    for other, marker in others.items():
        assert (marker in text) == (other == script or (marker == "tasks/point_robot" and script in
                                                        ("meta_dt", "collect"))), (other, marker)
    for key, _, _ in describe(ENTRIES[script]):
        if key not in SET_BY_SCRIPT.get(script, ()):
            assert f"\n  {key}=" in text and OmegaConf.select(cfg, key, default=KeyError) is not KeyError, key
