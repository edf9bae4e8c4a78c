"""Meta-DT and Prompt-DT (agents/meta_dt): the context world model tells two goals apart, the prompt is the
highest-error window, the prompted model stays causal, tiny end-to-end runs of both methods on PointRobot,
and train/evaluate.py on an offline run (eval.json, eval.png) including a resumed DT run."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.dt.train import DTConfig
from ssmrl.agents.meta_dt.config import MetaDTConfig, WorldModelConfig, from_mapping, world_model_from_mapping
from ssmrl.agents.meta_dt.prompt import Prompt, best_window, gather_prompt
from ssmrl.agents.meta_dt.train import make_prompted_model
from ssmrl.agents.meta_dt.world_model import build_world_model, world_model_data
from ssmrl.experiment.config import parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBS, ACT, K, KP, Z = 3, 2, 4, 2, 3


def _compose(name, overrides):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs", name), version_base="1.3"):
        return OmegaConf.to_container(compose(name, overrides=overrides), resolve=True)


def _two_goal_data(rng, goals, episodes=16, horizon=20):
    """Random-action PointRobot episodes for each goal, stacked goal by goal: ``[G * E, T, ...]``."""
    actions = rng.uniform(-0.1, 0.1, (len(goals), episodes, horizon, 2)).astype(np.float32)
    next_pos = np.cumsum(actions, 2)
    rewards = -np.linalg.norm(next_pos - goals[:, None, None], axis=-1)
    flat = lambda x: jnp.asarray(x.reshape((-1,) + x.shape[2:]))  # noqa: E731
    return world_model_data(flat((next_pos - actions) / 0.3), flat(actions / 0.1), flat(rewards), flat(next_pos / 0.3))


def test_world_model_task_vectors_separate_two_goals():
    goals = np.array([[0.2, 0.2], [-0.8, 0.8]], np.float32)
    data = _two_goal_data(np.random.default_rng(0), goals)
    config = WorldModelConfig(features=32, task_dim=4, context_len=4, batch_size=64, lr=3e-3, num_steps=300,
                              steps_per_chunk=300)
    wm = build_world_model(config, 2, 2)
    state, metrics = wm.train_chunk(wm.init(jax.random.PRNGKey(0)), data)
    loss = np.asarray(metrics["loss"])
    assert loss[-20:].mean() < 0.1 * loss[:20].mean()
    z, errors = wm.annotate(state.params, data)
    assert z.shape == (32, 20, 4) and errors.shape == (32, 20)
    z = np.asarray(z)[:, config.context_len:].reshape(2, -1, 4)  # steps with a full context, per goal
    centres = z.mean(1)
    within = np.mean([np.linalg.norm(z[g] - centres[g], axis=-1).mean() for g in range(2)])
    between = np.linalg.norm(centres[0] - centres[1])
    assert between > 2.0 * within, (between, within)
    # An empty context (t = 0) carries no task: it predicts worse than a full one.
    assert np.asarray(errors)[:, 0].mean() > np.asarray(errors)[:, config.context_len:].mean()


def test_prompt_is_the_highest_error_window():
    rng = np.random.default_rng(1)
    errors = rng.uniform(size=(6, 12)).astype(np.float32)
    starts = np.asarray(best_window(jnp.asarray(errors), 3))
    brute = [int(np.argmax([e[s:s + 3].sum() for s in range(10)])) for e in errors]
    assert starts.tolist() == brute
    errors[2, 7:10] = 10.0
    assert int(best_window(jnp.asarray(errors), 3)[2]) == 7
    values = jnp.arange(6 * 12, dtype=jnp.float32).reshape(6, 12)
    prompt = gather_prompt(values, values[..., None], values[..., None], jnp.array([2]), jnp.array([7]), 3)
    np.testing.assert_array_equal(np.asarray(prompt.rtg[0]), [31.0, 32.0, 33.0])
    np.testing.assert_array_equal(np.asarray(prompt.timesteps[0]), [7, 8, 9])


def test_config_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown method 'mdt'; valid: \['meta_dt', 'prompt_dt'\]"):
        from_mapping({"method": "mdt"})
    with pytest.raises(ValueError, match="unknown encoder 'transformerx'; valid:"):
        world_model_from_mapping({"encoder": "transformerx"})
    with pytest.raises(ValueError, match=r"unknown config key 'prompt_length'; valid: .*'prompt_len'"):
        from_mapping({"prompt_length": 5})


def _inputs(key, b=2):
    ks = jax.random.split(key, 8)
    main = (jax.random.normal(ks[0], (b, K)), jax.random.normal(ks[1], (b, K, OBS)),
            jax.random.normal(ks[2], (b, K, ACT)), jnp.tile(jnp.arange(K), (b, 1)),
            jax.random.normal(ks[3], (b, K, Z)))
    prompt = Prompt(jax.random.normal(ks[4], (b, KP)), jax.random.normal(ks[5], (b, KP, OBS)),
                    jax.random.normal(ks[6], (b, KP, ACT)), jnp.tile(jnp.arange(KP), (b, 1)))
    return main, prompt


@pytest.mark.parametrize("backbone", ["transformer", "s5", "mamba"])
def test_meta_dt_inputs_are_causal(backbone):
    options = () if backbone == "transformer" else (("state_size", 4),)
    dt = DTConfig(backbone=backbone, features=8, num_layers=1, dropout=0.0, backbone_options=options)
    model = make_prompted_model(MetaDTConfig(prompt_len=KP), dt, ACT, 0.5, task_dim=Z)
    main, prompt = _inputs(jax.random.PRNGKey(0))
    on = jnp.ones((2,), bool)
    params = model.init(jax.random.PRNGKey(1), *main, prompt, on)
    apply = jax.jit(lambda m, p, mask: model.apply(params, *m, p, mask))
    base = np.asarray(apply(main, prompt, on))
    assert base.shape == (2, K, ACT) and np.all(np.abs(base) <= 0.5)
    for t in range(K - 1):
        for which in (0, 1, 2, 4):  # rtg, state, action, task vector of step t+1
            changed = list(main)
            changed[which] = changed[which].at[:, t + 1].add(3.0)
            out = np.asarray(apply(tuple(changed), prompt, on))
            np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-5)
            if which != 2:  # the prediction at t+1 reads R, s and z of step t+1
                assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-6
    # The prompt reaches every prediction when used, none when replaced by the empty prompt.
    other = prompt._replace(states=prompt.states + 3.0)
    assert np.abs(np.asarray(apply(main, other, on))[:, 0] - base[:, 0]).min() > 1e-6
    off = jnp.zeros((2,), bool)
    np.testing.assert_allclose(np.asarray(apply(main, other, off)), np.asarray(apply(main, prompt, off)), atol=1e-6)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny PointRobot datasets from a barely trained PPO agent, as tests/test_dt.py collects them."""
    from ssmrl.experiment.collect import collect

    values = _compose("collect", ["preset=small", "model.features=8"])
    values.update(episodes_per_task=2, eval_episodes=1, progress=False, total_timesteps=1280, updates_per_chunk=1,
                  encoder_hidden=8, head_hidden=8)
    directory = str(tmp_path_factory.mktemp("meta_dt") / "data")
    collect(parse("collect", values), directory)
    return directory


def _tiny(name, data_dir, overrides=()):
    """The config tree of a tiny run (``parse(name, tree)`` checks it into the entry point's dataclass)."""
    values = _compose(name, ["preset=small", "env=tasks/point_robot", *overrides])
    values.update(dataset_dir=data_dir, progress=False)
    values["dt"].update(features=8, num_layers=1, context_len=4, batch_size=4, num_steps=4, steps_per_chunk=2,
                        warmup_steps=1, eval_episodes=1)
    if "world_model" in values:
        values["world_model"].update(features=8, task_dim=4, batch_size=8, num_steps=4, steps_per_chunk=2)
    return values


@pytest.mark.parametrize("method,modes", [("meta_dt", {"zero_shot", "few_shot"}), ("prompt_dt", {"prompted"})])
def test_end_to_end_point_robot(data_dir, tmp_path, method, modes, stored_without):
    from ssmrl.experiment.meta_dt import run_meta_dt

    values = _tiny("meta_dt", data_dir, [f"method={method}", "model=s5"])
    values["model_options"] = {"state_size": 4}
    summary = run_meta_dt(parse("meta_dt", values), str(tmp_path / method))
    saved = json.load(open(tmp_path / method / "summary.json"))
    assert saved["method"] == method and saved["train_steps"] == 4 and np.isfinite(saved["final_loss"])
    assert (saved["world_model"] is None) == (method == "prompt_dt")
    for split, n in (("train", 45), ("test", 5)):
        assert set(summary["eval"][split]) == modes
        for stats in summary["eval"][split].values():
            assert len(stats["per_task_return"]) == n and np.isfinite(stats["return_mean"])
    run = json.load(open(tmp_path / method / "run.json"))
    assert run["kind"] == "meta_dt" and run["config"]["meta"]["method"] == method
    if method == "meta_dt":  # cut in the world-model phase, resumed: the same world model, DT and returns
        config = parse("meta_dt", values)
        assert run_meta_dt(config, str(tmp_path / "cut"), stop_after=1)["stopped"] == "stop_after"
        stored_without(str(tmp_path / "cut"), "meta.task_context")  # stored before it existed: resumes at its default
        resumed = run_meta_dt(config, str(tmp_path / "cut"), resume=True)
        assert resumed["world_model"]["losses"] == summary["world_model"]["losses"]
        assert resumed["losses"] == summary["losses"] and resumed["eval"] == summary["eval"]


def test_dt_resume_and_evaluate(data_dir, tmp_path, stored_without):
    from ssmrl.experiment.dt import run_dt
    from ssmrl.experiment.evaluation import evaluate_run

    values = parse("dt", _tiny("dt", data_dir))
    whole = run_dt(values, str(tmp_path / "whole"))
    assert run_dt(values, str(tmp_path / "cut"), stop_after=1)["finished"] is False
    stored_without(str(tmp_path / "cut"), "target_return")  # stored before it existed: resumes at its default
    resumed = run_dt(values, str(tmp_path / "cut"), resume=True)
    assert [x["loss"] for x in resumed["losses"]] == [x["loss"] for x in whole["losses"]]
    assert resumed["eval"]["test"]["per_task_return"] == whole["eval"]["test"]["per_task_return"]

    report = evaluate_run(str(tmp_path / "whole"), episodes=5)
    assert report["kind"] == "dt" and report["checkpoint"] == 2
    assert report["episodes_per_task"] == {"train": 1, "test": 1}
    assert len(report["splits"]["test"]["dt"]["per_task_return"]) == 5
    # The same checkpoint, seed-independent policy and env: the run's own evaluation is reproduced.
    np.testing.assert_allclose(report["splits"]["test"]["dt"]["per_task_return"],
                               whole["eval"]["test"]["per_task_return"], rtol=1e-4)
    assert os.path.getsize(tmp_path / "whole" / "eval.png") > 0
    assert json.load(open(tmp_path / "whole" / "eval.json"))["splits"]["train"]["dt"]["return_mean"] == \
        report["splits"]["train"]["dt"]["return_mean"]


def test_world_model_learns_from_extra_datasets(data_dir):
    from ssmrl.experiment.meta_dt import setup_meta

    values = _tiny("meta_dt", data_dir, ["model=s5"])
    plain = setup_meta(parse("meta_dt", values))
    assert plain.world_model_train_data.states.shape == plain.world_model_data.states.shape
    values["world_model_extra_datasets"] = ["random"]
    extra = setup_meta(parse("meta_dt", values))
    n = plain.world_model_data.states.shape[0]
    assert extra.world_model_train_data.states.shape[0] == 2 * n  # expert + random episodes
    # The DT's own episodes (what gets annotated with z) are unchanged, and come first.
    np.testing.assert_array_equal(extra.world_model_data.states, plain.world_model_data.states)
    np.testing.assert_array_equal(extra.world_model_train_data.states[:n], plain.world_model_data.states)
    assert not np.array_equal(extra.world_model_train_data.actions[n:], plain.world_model_data.actions)
    per_task = plain.offline.episodes_per_task
    np.testing.assert_array_equal(extra.world_model_train_tasks, np.tile(np.arange(n) // per_task, 2))
    values["world_model_extra_datasets"] = ["randomm"]
    with pytest.raises(ValueError, match=r"unknown world_model_extra_datasets 'randomm'; valid: \['medium', 'expert'"):
        parse("meta_dt", values)


def test_task_context_z_comes_from_the_same_task():
    from ssmrl.experiment.meta_dt import task_context_z

    tasks, horizon = 3, 4
    pool_tasks = np.concatenate([np.repeat(np.arange(tasks), 2), np.repeat(np.arange(tasks), 5)])  # two datasets
    pool_z = np.broadcast_to(pool_tasks[:, None, None].astype(np.float32), (len(pool_tasks), horizon, 1)).copy()
    pool_z += np.arange(horizon)[None, :, None] * 0.1  # which step it came from
    z = task_context_z(jnp.asarray(pool_z), pool_tasks, 2, (tasks * 2, horizon), np.random.default_rng(0))
    assert z.shape == (6, horizon, 1)
    np.testing.assert_array_equal(np.floor(np.asarray(z[..., 0]) + 1e-6), np.repeat(np.arange(tasks), 2)[:, None]
                                  * np.ones((1, horizon)))
    assert len(np.unique(np.round(np.asarray(z) % 1, 3))) > 1  # steps are drawn, not copied


def test_task_context_is_validated():
    from ssmrl.agents.meta_dt.config import from_mapping

    with pytest.raises(ValueError, match="unknown task_context 'taks'; valid: \\['own', 'task'\\]"):
        from_mapping({"task_context": "taks"})
