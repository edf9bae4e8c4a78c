"""Whether a world model's imagination lets its actor save the penalties it foresees, and loses the balls Pong's
paddle returned (agents/world_model/imagined_saves.py, scripts/world_model_saves.py): which replay rows each lead's
window reads, the flags against a hand computation with the agent's open loop, the shares per lead, the script's
tables and refusals."""

import dataclasses
import os
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import build, init_params, open_loop_predictions
from ssmrl.agents.world_model.imagined_saves import (
    imagined_saves,
    lead_windows,
    losses_by_lead,
    penalty_windows,
    return_windows,
    shares_by_lead,
)
from ssmrl.envs.atari import pong
from ssmrl.experiment.world_model import run_world_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = wmc.validate(wmc.small(
    env_name="Breakout-MinAtar", model="rssm", hidden=16, latent_groups=4, latent_classes=4, channels=(4, 8),
    mlp_hidden=16, ac_hidden=16, imag_batch=8, imag_context=3, horizon=4, batch_size=2, batch_length=8, prefill=40,
    train_every=40, updates_per_chunk=1, total_steps=80, eval_steps=20, eval_envs=1, video_context=4,
    video_horizon=4, reward_zero_init=False))


def _replay(size=40):
    """Two envs; row i's frame holds i (env 0) and 100 + i (env 1). Env 0 is penalised at row 20; env 1 at row 10,
    its episode starting at row 8, and at row 38, too near the end for any window."""
    replay = rb.init_replay(size, 2, obs_shape=(1,), obs_dtype=jnp.float32)
    reward = np.zeros((size, 2), np.float32)
    reward[20, 0], reward[10, 1], reward[38, 1] = -1.0, -2.0, -1.0
    first = np.zeros((size, 2), bool)
    first[0], first[8, 1] = True, True
    obs = np.stack([np.arange(size), 100 + np.arange(size)], 1)[..., None].astype(np.float32)
    return replay.replace(obs=jnp.asarray(obs), reward=jnp.asarray(reward), first=jnp.asarray(first),
                          action=jnp.asarray(np.arange(size * 2).reshape(size, 2) % 3), size=jnp.asarray(size))


def test_penalty_windows_put_the_penalty_at_its_leads_imagined_step():
    C, tail = 3, 2
    windows, lead = penalty_windows(_replay(), C, [1, 2, 5], tail, (0, 40), 10)
    # env 1's row 10 first (row order): lead 1 starts at row 8, its episode's first; leads 2 and 5 would cross it
    # env 0's row 20 at every lead; row 38 of env 1 leaves no room for a 9-row window
    assert lead.tolist() == [1, 1, 2, 5]
    T = C - 1 + 5 + tail
    assert windows["obs"].shape == (T, 4, 1) and windows["action"].shape == (T, 4)
    starts = windows["obs"][0, :, 0]
    np.testing.assert_array_equal(starts, [108, 18, 17, 14])
    penalty = windows["reward"][C - 2 + lead, np.arange(4)]  # the lead-th imagined step's reward
    np.testing.assert_array_equal(penalty, [-2.0, -1.0, -1.0, -1.0])
    np.testing.assert_array_equal(windows["obs"][:, 1, 0], 18 + np.arange(T))

    windows, lead = penalty_windows(_replay(), C, [1, 2, 5], tail, (0, 40), 1)  # the first penalty only
    assert lead.tolist() == [1]
    windows, lead = penalty_windows(_replay(), C, [2], tail, (15, 40), 10)  # row 10 outside the rows
    assert lead.tolist() == [2] and windows["obs"][0, 0, 0] == 17
    with pytest.raises(ValueError, match=r"no penalty in rows 0-15 .* at leads \[2, 5\]"):
        penalty_windows(_replay(), C, [2, 5], tail, (0, 15), 10)
    with pytest.raises(ValueError, match="leads must be non-empty and >= 1"):
        penalty_windows(_replay(), C, [0, 1], tail, (0, 40), 10)


def test_return_windows_put_the_would_be_point_at_its_leads_imagined_step():
    """One env of Pong-like frames: the ball comes right to column 54 at row 12 and goes back across column 40 at
    row 15, so the point would have been paid at row 12 + PAID_AFTER; its windows sit where a penalty's would."""
    size, C, tail = 40, 3, 2
    columns = [None] * 6 + [30, 34, 38, 42, 46, 50, 54, 50, 44, 38, 32] + [None] * (size - 17)
    frames = np.broadcast_to(np.asarray(pong.BACKGROUND, np.uint8), (size, 64, 64, 3)).copy()
    for t, x in enumerate(columns):
        if x is not None:
            frames[t, 30, x:x + 2] = 236
    first = np.zeros((size, 1), bool)
    first[0] = True
    replay = rb.init_replay(size, 1, obs_shape=(64, 64, 3), obs_dtype=jnp.uint8).replace(
        obs=jnp.asarray(frames[:, None]), first=jnp.asarray(first), size=jnp.asarray(size))
    windows, lead = return_windows(replay, C, [1, 3], tail, (0, size), 5)
    paid = 12 + pong.PAID_AFTER
    assert lead.tolist() == [1, 3] and windows["obs"].shape == (C - 1 + 3 + tail, 2, 64, 64, 3)
    starts = [paid - (C - 2 + k) for k in (1, 3)]
    np.testing.assert_array_equal(windows["obs"][:, :, 30, 54, 0], frames[np.add.outer(np.arange(C + 4), starts),
                                                                          30, 54, 0])
    with pytest.raises(ValueError, match=r"no Pong return in rows 17-40 of a 40-row replay"):
        return_windows(replay, C, [1], tail, (17, size), 5)  # the anchor, row 16, outside the rows
    with pytest.raises(ValueError, match="returns must be >= 1, got 0"):
        return_windows(replay, C, [1], tail, (0, size), 0)


def test_imagined_saves_against_the_open_loop():
    """The flags against the agent's open loop run by hand: the recorded actions' imagination, and each action held
    from the first imagined step, penalised where some predicted reward of the plan's steps (imagined steps 1 ..
    lead + tail) is below ``-threshold``."""
    parts = build(CONFIG)
    C, A, T, N, tail = CONFIG.imag_context, parts.num_actions, 7, 6, 1
    params = init_params(parts, jax.random.PRNGKey(0))["wm"]
    k_obs, k_action, key = jax.random.split(jax.random.PRNGKey(2), 3)
    obs = jax.random.bernoulli(k_obs, 0.3, (T, N, *parts.obs_shape)).astype(parts.obs_dtype)
    action = jax.random.randint(k_action, (T, N), 0, A)
    first = jnp.zeros((T, N), bool).at[0].set(True)
    lead = jnp.asarray([1, 2, 3, 1, 2, 3])

    def plan_minimum(actions):
        reward = np.asarray(parts.wm.reward_value(open_loop_predictions(parts, params, obs, actions, first, C, key)[1]))
        return np.asarray([reward[C - 1:C - 1 + int(k) + tail, n].min() for n, k in enumerate(lead)])

    recorded = plan_minimum(action)
    held = np.stack([plan_minimum(action.at[C - 1:].set(a)) for a in range(A)])
    threshold = -float(np.median(recorded))  # half the windows foreseen
    flags = np.asarray(jax.jit(lambda p: imagined_saves(parts, p, obs, action, first, lead, tail, threshold, key))(
        params))
    assert flags.shape == (2 + A, N) and flags.dtype == bool
    np.testing.assert_array_equal(flags[0], recorded < -threshold)
    np.testing.assert_array_equal(flags[2:], held >= -threshold)
    np.testing.assert_array_equal(flags[1], (held >= -threshold).any(0))
    assert flags[0].any() and not flags[0].all()


def test_shares_by_lead_count_saves_among_the_foreseen():
    flags = np.array([[1, 1, 0, 1, 0],   # foreseen
                      [1, 0, 1, 0, 0],   # some held action saves
                      [1, 0, 1, 0, 0],   # action 0 saves
                      [0, 0, 0, 0, 0]],  # action 1 saves
                     bool)
    rows = shares_by_lead(flags, np.array([1, 1, 1, 2, 3]))
    assert [r["lead"] for r in rows] == [1, 2, 3] and [r["penalties"] for r in rows] == [3, 1, 1]
    assert rows[0]["foreseen"] == pytest.approx(2 / 3) and rows[0]["saved"] == 0.5 and rows[0]["held"] == [0.5, 0]
    assert rows[1]["foreseen"] == 1 and rows[1]["saved"] == 0
    assert rows[2]["foreseen"] == 0 and np.isnan(rows[2]["saved"]) and np.isnan(rows[2]["held"]).all()


def test_losses_by_lead_count_the_returns_imagination_loses():
    flags = np.array([[1, 0, 0, 0],   # the recorded actions' imagination loses it
                      [1, 1, 0, 1],   # some held action saves it (not every one loses)
                      [1, 1, 0, 1],   # action 0 saves it
                      [0, 1, 0, 0]],  # action 1 saves it
                     bool)
    rows = losses_by_lead(flags, np.array([1, 1, 1, 2]))
    assert [(r["lead"], r["returns"]) for r in rows] == [(1, 3), (2, 1)]
    assert rows[0]["foreseen"] == pytest.approx(1 / 3) and rows[0]["held_any"] == pytest.approx(2 / 3)
    assert rows[0]["held"] == pytest.approx([1 / 3, 2 / 3]) and rows[0]["held_all"] == pytest.approx(1 / 3)
    assert (rows[1]["foreseen"], rows[1]["held_any"], rows[1]["held"], rows[1]["held_all"]) == (0, 1, [0, 1], 0)


def test_saves_script_reads_a_run_and_refuses_what_it_cannot_measure(tmp_path, capsys):
    """Breakout-MinAtar pays no penalty, so a run of it has no window to measure: the script says so. With one
    penalty written into its replay, it prints that penalty's row."""
    run_dir = str(tmp_path / "run")
    run_world_model(CONFIG, run_dir, progress=False)
    main = runpy.run_path(os.path.join(ROOT, "scripts", "world_model_saves.py"), run_name="saves")["main"]
    opened = main.__globals__["open_world_model_run"]

    def with_a_penalty(directory):
        parts, step, state = opened(directory)
        first = np.asarray(state.replay.first[:, 0])
        row = next(p for p in range(50, 80) if not first[p - 1:p + 1].any())  # a lead-1 window of one episode
        return parts, step, state.replace(replay=state.replay.replace(reward=state.replay.reward.at[row, 0].set(-1)))

    main.__globals__["open_world_model_run"] = with_a_penalty
    out = main([run_dir, "--leads", "1", "--tail", "0", "--threshold", "1e-9"])
    main.__globals__["open_world_model_run"] = opened
    assert [(r["lead"], r["penalties"]) for r in out] == [(1, 1)] and len(out[0]["held"]) == 3
    printed = capsys.readouterr().out
    assert "| lead | penalties | foreseen | saved by a held action (of foreseen) | action 0 | action 1 | action 2 |" \
        in printed and "| 1 | 1 | " in printed
    with pytest.raises(SystemExit):
        main([run_dir, "--returns", "5"])
    assert "--returns reads Pong's frames; this run is on 'Breakout-MinAtar'" in capsys.readouterr().err

    def as_pong(directory):  # the run's frames stand for Pong's, its row 60 for a return's would-be point
        parts, step, state = opened(directory)
        return dataclasses.replace(parts, config=dataclasses.replace(parts.config, env_name="atari/Pong")), step, state

    def one_return(replay, context, leads, tail, rows, returns):
        return lead_windows(replay, context, leads, tail, [(60, 0)], "return")

    main.__globals__.update(open_world_model_run=as_pong, return_windows=one_return)
    out = main([run_dir, "--returns", "1", "--leads", "1", "--tail", "0", "--threshold", "1e-9"])
    main.__globals__.update(open_world_model_run=opened, return_windows=return_windows)
    assert [(r["lead"], r["returns"]) for r in out] == [(1, 1)] and len(out[0]["held"]) == 3
    printed = capsys.readouterr().out
    assert "Pong's returns in replay rows" in printed
    assert "| lead | returns | lost with the recorded actions | lost by some held action | lost holding action 0 |" \
        in printed and "| 1 | 1 | " in printed
    with pytest.raises(SystemExit):
        main([run_dir, "--leads", "1-2"])
    assert "no penalty in rows 0-80 of a 80-row replay" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([run_dir, "--rows", "10-5"])
    assert "--rows must be LO-HI with 0 <= LO < HI" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing")])
    assert "not a run directory" in capsys.readouterr().err
