"""The one runtime (experiment.loop, experiment.run_dir, experiment.checkpoint): resume bit for bit, Ctrl-C,
SIGTERM, divergence, used folders, concurrent writers, changed configs and corrupt files each lose nothing and say
what happened. The loop is tested on a tiny synthetic trainer (one small compile); PPO checks divergence
end to end; tests/test_ppo.py, test_meta_dt.py, test_dt.py and test_world_model_train.py resume each kind."""

import json
import os
import signal
import socket
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.experiment import loop
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.loop import Diverged, Interrupted, LoopSpec, Terminated, run_loop, run_main
from ssmrl.experiment.results import read_results
from ssmrl.experiment.run_dir import LOCK_FILE, RunDir, RunDirError, changed_keys, read_run

SPEC = LoopSpec(num_chunks=4, steps_per_update=10, headline="loss")
CONFIG = {"lr": 0.1, "progress": False, "nested": {"size": 3}}


@jax.jit
def _chunk(state):
    """Three noisy updates of a tiny "model": ``params [3]``, a key; metrics ``[updates]``."""

    def update(state, _):
        key, k = jax.random.split(state["key"])
        w = 0.9 * state["params"]["w"] + 0.1 * jax.random.normal(k, (3,))
        return {"params": {"w": w}, "key": key}, {"loss": jnp.sum(w ** 2), "grad_norm": jnp.abs(w).max()}

    return jax.lax.scan(update, state, None, 3)


def _start():
    return {"params": {"w": jnp.ones((3,))}, "key": jax.random.PRNGKey(0)}


def _run(path, chunk=_chunk, resume=False, stop_after=None, config=CONFIG, start=_start):
    with RunDir(str(path), "ppo", config, resume) as run:
        checkpoints = Checkpoints(os.path.join(run.path, "checkpoints"))
        try:
            return run_loop(chunk, start(), SPEC, checkpoints, resume=run.resuming, stop_after=stop_after,
                            params=lambda s: s["params"], run=run)
        finally:
            checkpoints.close()


def _same(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a.state), jax.tree_util.tree_leaves(b.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.history == b.history and a.updates == b.updates


def _summary(path):
    return json.loads((path / "summary.json").read_text())


def _diverging(after: int):
    """``_chunk`` that returns a NaN loss from call ``after + 1`` on."""
    calls = []

    def chunk(state):
        calls.append(1)
        state, metrics = _chunk(state)
        if len(calls) > after:
            metrics = dict(metrics, loss=metrics["loss"].at[1].set(jnp.nan))
        return state, metrics

    return chunk


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    whole = _run(tmp_path / "whole")
    assert whole.stopped == "finished" and whole.updates == 12 and whole.checkpoint == 4
    assert _run(tmp_path / "cut", stop_after=1).stopped == "stop_after"
    resumed = _run(tmp_path / "cut", resume=True)
    _same(resumed, whole)
    assert resumed.wall_time_s > 0 and not (tmp_path / "cut" / LOCK_FILE).exists()
    assert read_run(str(tmp_path / "cut")) == {"kind": "ppo", "version": read_run(str(tmp_path / "whole"))["version"],
                                               "config": CONFIG}


def test_wall_time_is_summed_over_the_crashed_and_the_resumed_process(tmp_path, monkeypatch):
    """A clock that moves 10 s per chunk and stands still otherwise: the time after the crashed process's last
    checkpoint (its save, its exit) is not counted, so the resumed run's figure equals the uninterrupted one's."""
    clock = [0.0]

    def chunk(state):
        clock[0] += 10.0
        return _chunk(state)

    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    assert _run(tmp_path / "whole", chunk).wall_time_s == 40.0
    assert _run(tmp_path / "cut", chunk, stop_after=1).wall_time_s == 10.0
    assert _run(tmp_path / "cut", chunk, resume=True).wall_time_s == 40.0


def test_a_fresh_and_a_resumed_run_share_one_compiled_chunk(tmp_path):
    """A fresh state holds a weakly typed ``time`` (as envs reset it) and uncommitted arrays; a restored
    one neither. The loop starts from the restored form, so the chunk compiles once for all three runs."""

    @jax.jit
    def chunk(state):
        inner, metrics = _chunk({"params": state["params"], "key": state["key"]})
        return {**inner, "time": state["time"] + 1}, metrics

    start = lambda: {**_start(), "time": jnp.asarray(0)}  # noqa: E731
    assert start()["time"].weak_type
    _run(tmp_path / "whole", chunk, start=start)
    _run(tmp_path / "cut", chunk, stop_after=1, start=start)
    _run(tmp_path / "cut", chunk, resume=True, start=start)
    assert chunk._cache_size() == 1


def _signalling(after: int, signum: int):
    """``_chunk`` that sends this process ``signum`` in call ``after + 1``, as Ctrl-C or ``kill`` would."""
    calls = []

    def chunk(state):
        calls.append(1)
        if len(calls) == after + 1:
            os.kill(os.getpid(), signum)
        return _chunk(state)

    return chunk


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler for the test, as a terminal or CI gives it: a suite started with ``&`` from a
    script inherits SIGINT ignored, and Python then installs none (Ctrl-C rightly does nothing to such a run)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
@pytest.mark.parametrize("signum, code, said, stopped", [
    (signal.SIGINT, 130, "interrupted in chunk 3 of 4", "interrupted"),
    # what a scheduler, ``kill`` or a job started with ``&`` (which ignores SIGINT) gets
    (signal.SIGTERM, 143, "terminated by SIGTERM in chunk 3 of 4", "terminated")])
def test_a_stop_signal_keeps_the_last_checkpoint_and_exits_with_its_code(tmp_path, capsys, signum, code, said,
                                                                         stopped):
    before = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stop:
        run_main(lambda: _run(tmp_path, _signalling(2, signum)))
    assert stop.value.code == code and signal.getsignal(signum) is before
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "resume=true" in err
    summary = _summary(tmp_path)
    assert summary["stopped"] == stopped and summary["checkpoint"] == 2 and summary["updates"] == 6
    assert not (tmp_path / LOCK_FILE).exists()
    _same(_run(tmp_path, resume=True), _run(tmp_path / "whole"))


@pytest.mark.parametrize("signum, error, stopped", [(signal.SIGINT, Interrupted, "interrupted"),
                                                    (signal.SIGTERM, Terminated, "terminated")])
def test_a_stop_during_a_save_waits_for_it(tmp_path, monkeypatch, signum, error, stopped):
    saves = []
    real_save = Checkpoints.save

    def save_then_signal(self, step, state, record):
        saves.append(step)
        if step == 2:  # the signal arrives while checkpoint 2 is being written
            os.kill(os.getpid(), signum)
        real_save(self, step, state, record)

    monkeypatch.setattr(Checkpoints, "save", save_then_signal)
    with pytest.raises(error, match="the checkpoint of chunk 2 .* is kept"):
        _run(tmp_path)
    assert _summary(tmp_path)["stopped"] == stopped
    assert saves == [1, 2] and _summary(tmp_path)["checkpoint"] == 2 and _summary(tmp_path)["updates"] == 6
    checkpoints = Checkpoints(str(tmp_path / "checkpoints"))
    assert checkpoints.latest_step() == 2
    checkpoints.close()


def test_divergence_stops_keeps_the_last_good_checkpoint_and_says_why(tmp_path):
    with pytest.raises(Diverged, match=r"non-finite loss at update 8; the last good checkpoint \(chunk 2\)") as err:
        _run(tmp_path, _diverging(2))
    assert err.value.exit_code == 3
    summary = _summary(tmp_path)
    assert summary["stopped"] == "diverged" and "update 8" in summary["reason"] and not summary["finished"]
    checkpoints = Checkpoints(str(tmp_path / "checkpoints"))
    assert checkpoints.latest_step() == 2
    checkpoints.close()


def test_ppo_with_a_huge_learning_rate_diverges_cleanly(tmp_path):
    from ssmrl.agents.ppo.config import PPOConfig
    from ssmrl.experiment.ppo import run_ppo

    config = PPOConfig(env_name="RepeatPreviousEasy", model="gru", features=8, num_layers=1, model_options=(),
                       encoder_hidden=8, head_hidden=8, total_timesteps=4 * 8 * 2, num_envs=4, num_steps=8,
                       update_epochs=1, num_minibatches=2, updates_per_chunk=1, eval_envs=2, lr=1e6)
    with pytest.raises(Diverged, match="diverged: non-finite"):
        run_ppo(config, str(tmp_path), progress=False)
    summary = _summary(tmp_path)
    assert summary["kind"] == "ppo" and summary["stopped"] == "diverged" and summary["finished"] is False
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_used_folder_is_refused_and_nothing_is_lost(tmp_path):
    _run(tmp_path, stop_after=1)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RunDirError, match=rf"run directory {tmp_path} is not empty .*pass resume=true .*hydra.run.dir"):
        _run(tmp_path, config=dict(CONFIG, lr=0.2))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    (tmp_path.parent / "hydra_only" / ".hydra").mkdir(parents=True)  # what Hydra writes first is no earlier run
    RunDir(str(tmp_path.parent / "hydra_only"), "ppo", CONFIG).close()


def test_a_used_folder_is_refused_before_hydra_rewrites_its_record(tmp_path, capsys):
    """Hydra writes ``.hydra/`` before the entry point runs: the command line is checked first."""
    from ssmrl.experiment.config import refuse_used_run_dir

    _run(tmp_path, stop_after=1)
    with pytest.raises(SystemExit) as stop:
        refuse_used_run_dir(["env=popgym", f"hydra.run.dir={tmp_path}"])
    assert stop.value.code == 2 and f"run directory {tmp_path} is not empty" in capsys.readouterr().err
    refuse_used_run_dir(["env=popgym", f"hydra.run.dir={tmp_path}", "resume=true"])  # resuming is allowed
    refuse_used_run_dir(["env=popgym", f"hydra.run.dir={tmp_path / 'fresh'}"])


def test_a_second_writer_is_refused_naming_the_lock_and_its_pid(tmp_path):
    with RunDir(str(tmp_path), "ppo", CONFIG):
        with pytest.raises(RunDirError, match=rf"{tmp_path / LOCK_FILE} is held by process {os.getpid()}"):
            RunDir(str(tmp_path), "ppo", CONFIG, resume=True)
        assert (tmp_path / LOCK_FILE).exists()  # still the first writer's
    assert not (tmp_path / LOCK_FILE).exists()
    (tmp_path / LOCK_FILE).write_text("nohost 1")  # a lock from another machine cannot be checked: refused
    with pytest.raises(RunDirError, match="held by process 1 on nohost"):
        RunDir(str(tmp_path), "ppo", CONFIG, resume=True)
    (tmp_path / LOCK_FILE).write_text(f"{socket.gethostname()} 999999999")  # its process is gone: stale
    RunDir(str(tmp_path), "ppo", CONFIG, resume=True).close()


def test_resume_with_a_changed_config_is_refused_before_anything_is_written(tmp_path):
    _run(tmp_path, stop_after=1)
    run_file = (tmp_path / "run.json").read_bytes()
    with pytest.raises(RunDirError, match=r"differs from .*run.json in \['lr', 'nested.size'\] \(lr: 0.1 -> 0.2"):
        _run(tmp_path, resume=True, config=dict(CONFIG, lr=0.2, nested={"size": 4}))
    with pytest.raises(RunDirError, match="is a 'ppo' run, not 'dt'"):
        RunDir(str(tmp_path), "dt", CONFIG, resume=True)
    assert (tmp_path / "run.json").read_bytes() == run_file and not (tmp_path / LOCK_FILE).exists()
    # progress and logging cannot change results: allowed, and the new values are recorded
    assert _run(tmp_path, resume=True, config=dict(CONFIG, progress=True, logger="wandb")).stopped == "finished"
    assert read_run(str(tmp_path))["config"]["progress"] is True


def test_options_added_by_a_later_version_and_left_empty_do_not_block_resume():
    stored = {"lr": 0.1, "model": {"name": "s4wm"}}
    assert changed_keys(stored, {"lr": 0.1, "model": {"name": "s4wm", "options": {}}, "layer_options": []}) == []
    assert changed_keys(stored, {"lr": 0.1, "model": {"name": "s4wm", "options": {"dt_min": 0.1}}}) == [
        "model.options.dt_min"]
    assert changed_keys({**stored, "extra": 1}, stored) == ["extra"]  # a key the new config lacks still counts


def test_settings_added_by_a_later_version_at_their_defaults_do_not_block_resume(tmp_path):
    """A run stored before a setting existed resumes while the setting is left at its default (which keeps the old
    behaviour), and is refused when it is set; a stored key keeps counting whatever its default."""
    stored, defaults = {"wm": {"lr": 0.1}}, {"wm": {"lr": 1e-4, "moving_weight": 0.0}}
    assert changed_keys(stored, {"wm": {"lr": 0.1, "moving_weight": 0.0}}, defaults) == []
    assert changed_keys(stored, {"wm": {"lr": 0.1, "moving_weight": 20.0}}, defaults) == ["wm.moving_weight"]
    assert changed_keys(stored, {"wm": {"lr": 0.1, "moving_weight": 0.0}}) == ["wm.moving_weight"]  # no defaults
    assert changed_keys(stored, {"wm": {"lr": 1e-4}}, defaults) == ["wm.lr"]
    RunDir(str(tmp_path), "world_model", stored).close()
    with pytest.raises(RunDirError, match="differs from .* in \\['wm.moving_weight'\\]"):
        RunDir(str(tmp_path), "world_model", {"wm": {"lr": 0.1, "moving_weight": 0.0}}, resume=True)
    with RunDir(str(tmp_path), "world_model", {"wm": {"lr": 0.1, "moving_weight": 0.0}}, resume=True,
                defaults=defaults) as run:
        assert run.resuming


def test_corrupt_files_are_named(tmp_path):
    _run(tmp_path, stop_after=1)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'run.json'} is corrupt"):
        _run(tmp_path, resume=True)
    (tmp_path / "run.json").write_text(json.dumps({"config": {}}))  # the old PPO layout: no kind
    with pytest.raises(RunDirError, match="run.json is corrupt or from an older version: it needs 'kind'"):
        read_run(str(tmp_path))
    (tmp_path / "run.json").write_text(json.dumps({"kind": "ppo", "version": "0", "config": CONFIG}))
    for path in (tmp_path / "checkpoints" / "1").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(RunDirError, match=rf"checkpoint {tmp_path / 'checkpoints' / '1'} cannot be restored"):
        _run(tmp_path, resume=True)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(RunDirError, match=rf"{tmp_path / 'summary.json'} is corrupt"):
        read_results(tmp_path)


def test_evaluate_names_a_kind_without_a_policy(tmp_path):
    from ssmrl.experiment.evaluation import evaluate_run

    RunDir(str(tmp_path), "collect", CONFIG).close()
    with pytest.raises(RunDirError, match=rf"{tmp_path} is a 'collect' run, which has no policy to evaluate"):
        evaluate_run(str(tmp_path))


def test_a_save_that_orbax_skips_is_an_error(tmp_path):
    checkpoints = Checkpoints(str(tmp_path))
    checkpoints.save(2, {"w": np.zeros(2)}, {})
    with pytest.raises(RunDirError, match=rf"checkpoint 1 was not saved in {tmp_path} \(its newest is 2\)"):
        checkpoints.save(1, {"w": np.ones(2)}, {})
    checkpoints.close()
