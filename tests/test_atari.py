"""Atari100k env (envs/atari): protocol checked against ale-py's raw ALEInterface on real ROMs,
the score table, the registry names, how far ahead a penalty can be avoided, and Pong's ball, paddles and returns
read from its RAM and frames. Small: 1-2 emulators, a few hundred steps each.
"""

import os
import re
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import envs
from ssmrl.envs.atari import (
    GAMES,
    HUMAN_SCORES,
    RANDOM_SCORES,
    AtariEnv,
    VectorAtari,
    human_normalized_score,
    make_atari,
    pong,
    rom_name,
)
from ssmrl.envs.atari.avoidable import avoidable, losable_returns, new_emulator


def _rollout(env, actions, seed=0):
    """Reset ``env`` (a VectorAtari) and run ``actions [T, N]`` in one jitted scan."""

    def body(state, a):
        obs, state, reward, term, trunc, info = env.step(jax.random.key(1), state, a)
        return state, (obs, reward, term, trunc, info)

    @jax.jit
    def run(key):
        obs0, state = env.reset(key)
        _, out = jax.lax.scan(body, state, jnp.asarray(actions, jnp.int32))
        return obs0, out

    return jax.tree.map(np.asarray, run(jax.random.key(seed)))


def _area_matrix(n_in, n_out):
    """Row i averages input cells [i*s, (i+1)*s), s = n_in / n_out, weighting partial cells by overlap."""
    s = n_in / n_out
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        lo, hi = i * s, (i + 1) * s
        for j in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
            w[i, j] = max(0.0, min(hi, j + 1) - max(lo, j)) / s
    return w


# ------------------------------------------------------------------------------------ scores
def test_score_table_and_normalisation():
    assert len(GAMES) == 26 and "Pong" in GAMES and "UpNDown" in GAMES
    for game in GAMES:
        assert human_normalized_score(game, RANDOM_SCORES[game]) == pytest.approx(0.0, abs=1e-12)
        assert human_normalized_score(game, HUMAN_SCORES[game]) == pytest.approx(1.0)
    assert human_normalized_score("Pong", -20.7) == pytest.approx(0.0)
    assert human_normalized_score("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized_score("Breakout", 30.5) == pytest.approx(1.0)
    np.testing.assert_allclose(human_normalized_score("Boxing", [0.1, 6.1, 12.1]), [0.0, 0.5, 1.0])
    assert rom_name("MsPacman") == "ms_pacman" and rom_name("UpNDown") == "up_n_down"
    from ale_py import roms

    assert all(roms.get_rom_path(rom_name(g)) is not None for g in GAMES)


def test_unknown_game_and_registry():
    with pytest.raises(ValueError, match="Pong") as err:
        make_atari("Tetris")
    assert "Tetris" in str(err.value) and "Breakout" in str(err.value)
    names = [n for n in envs.available() if n.startswith("atari/")]
    assert sorted(names) == sorted(f"atari/{g}" for g in GAMES)
    with pytest.raises(ValueError, match="atari/Pong"):
        envs.make("atari/Tetris")


# ------------------------------------------------------------------------------------ env
def test_minimal_action_sets_spaces_and_obs():
    pong, params = envs.make("atari/Pong")
    assert pong.num_actions == 6 and pong.action_space(params).n == 6
    assert params.max_steps_in_episode == 27_000 and pong.max_episode_frames == 108_000
    breakout, _ = envs.make("atari/Breakout")
    assert breakout.num_actions == 4
    space = pong.observation_space(params)
    assert space.shape == (64, 64, 3) and space.dtype == jnp.uint8

    # single env, unbatched (num_envs=1)
    obs, state = pong.reset(jax.random.key(0), params)
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    obs, state, reward, term, trunc, info = pong.step(jax.random.key(1), state, 0, params)
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    assert reward.dtype == jnp.float32 and term.shape == () and info["life_loss"].shape == ()

    # gymnax-style: vmap the single view over num_envs
    env, params = envs.make("atari/Pong", num_envs=2)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), params)
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == jnp.uint8
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, state, reward, *_ = step(jax.random.split(jax.random.key(1), 2), state, jnp.array([2, 3]), params)
    assert obs.shape == (2, 64, 64, 3) and reward.shape == (2,)
    with pytest.raises(ValueError, match="num_envs=2"):
        jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3), params)
    with pytest.raises(Exception, match="jax.vmap with axis size 2"):
        jax.block_until_ready(env.reset(jax.random.key(0), params))


def test_frame_skip_and_max_pool_match_raw_ale():
    """Each agent step = 4 raw ALE frames with the action held, obs = max of the last 2 frames
    (then area-resized to 64x64); rewards summed over the 4 frames."""
    steps = 40
    acts = np.random.default_rng(0).integers(0, 4, size=(steps, 1))
    full = VectorAtari("Breakout", 1, size=(210, 160), noop_max=0)
    small = VectorAtari("Breakout", 1, noop_max=0)
    obs0, (obs, reward, *_rest) = _rollout(full, acts)
    obs0_64, (obs_64, *_rest) = _rollout(small, acts)

    ale, action_set = new_emulator("Breakout")
    assert list(action_set) == list(full.action_set)
    np.testing.assert_array_equal(obs0[0], ale.getScreenRGB())
    pooled_differs = 0
    for t in range(steps):
        frames, total = [], 0
        for _ in range(4):
            total += ale.act(action_set[acts[t, 0]])
            frames.append(ale.getScreenRGB())
        expected = np.maximum(frames[-1], frames[-2])
        np.testing.assert_array_equal(obs[t, 0], expected, err_msg=f"step {t}")
        assert reward[t, 0] == total
        pooled_differs += not np.array_equal(expected, frames[-1])
    assert pooled_differs > 0  # the max-pool is visible on this rollout
    assert ale.getEpisodeFrameNumber() == 4 * steps

    wh, ww = _area_matrix(210, 64), _area_matrix(160, 64)
    for t in (0, steps // 2, steps - 1):
        resized = np.einsum("ij,jkc,lk->ilc", wh, obs[t, 0].astype(np.float64), ww)
        assert np.abs(resized - obs_64[t, 0]).max() <= 0.5 + 1e-6


def test_episode_cap_truncates_and_resets():
    cap_frames = 200  # 50 agent steps
    env = VectorAtari("Pong", 1, noop_max=0, max_episode_frames=cap_frames)
    assert env.default_params.max_steps_in_episode == 50
    obs0, (obs, reward, term, trunc, info) = _rollout(env, np.zeros((60, 1)))
    assert trunc[:, 0].nonzero()[0].tolist() == [49]
    assert not term.any()
    # auto-reset: the step that truncates returns the new episode's first frame
    np.testing.assert_array_equal(obs[49, 0], obs0[0])


def test_life_loss_is_info_only_on_breakout():
    """Always FIRE: lives drop one at a time; each drop is a life_loss while the episode goes on;
    LEFT never launches the ball so nothing is lost. XLA and host-callback backends agree."""
    actions = np.tile([[1, 3]], (110, 1))
    out = {}
    for backend in ("xla", "callback"):
        env = VectorAtari("Breakout", 2, backend=backend, noop_max=0, max_episode_frames=400)
        out[backend] = _rollout(env, actions)
    jax.tree.map(np.testing.assert_array_equal, out["xla"], out["callback"])
    obs0, (obs, reward, term, trunc, info) = out["xla"]
    lives, life_loss = info["lives"][:, 0], info["life_loss"][:, 0]
    drops = np.nonzero(lives[1:] < lives[:-1])[0] + 1
    assert len(drops) >= 3 and np.all(lives[drops] == lives[drops - 1] - 1)
    assert life_loss.nonzero()[0].tolist() == drops.tolist()
    assert not term[:, 0].any() and not trunc[:99, 0].any()  # the episode continued through them
    assert trunc[99].all() and (info["lives"][99] == 5).all()  # cap at 400 frames, reset to 5 lives
    assert not info["life_loss"][:, 1].any() and (info["lives"][:, 1] == 5).all()
    np.testing.assert_array_equal(info["discount"], 1.0)


def test_no_sticky_actions_deterministic():
    """Same seed and actions -> identical frames (also with the 30 random no-ops at reset)."""
    acts = np.random.default_rng(1).integers(0, 6, size=(60, 2))
    a = _rollout(VectorAtari("Pong", 2), acts, seed=3)
    b = _rollout(VectorAtari("Pong", 2), acts, seed=3)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    sticky = _rollout(VectorAtari("Pong", 2, repeat_action_probability=0.25), acts, seed=3)
    assert not np.array_equal(sticky[1][0], a[1][0])  # the check would see sticky actions
    with pytest.raises(ValueError, match="backend"):
        AtariEnv("Pong", backend="gpu")


# ------------------------------------------------------------------------------ avoidable
def test_a_lost_point_is_fated_a_step_before_and_avoidable_twelve_before():
    """Pong's emulator is deterministic: of the first 3 points random play loses (seed 0), no plan saves one from
    the step before it, and one moving the paddle then stopping saves each from 12 steps before; the shares nest
    (any plan >= each family, held: any >= each action); bad input is refused before any play."""
    out = avoidable("Pong", 3, [1, 12], seed=0)
    assert out["actions"][0] == "NOOP" and len(out["actions"]) == 6 and out["steps"] > 3
    one, twelve = out["rows"]
    assert (one["lead"], one["penalties"], twelve["penalties"]) == (1, 3, 3)
    assert one["any"] == 0 and twelve["move_then_stop"] == twelve["any"] == 1, out
    for row in out["rows"]:
        assert max(row["held"]) <= row["held_any"] <= row["any"] and row["move_then_stop"] <= row["any"], row
    for bad, message in [((3, [0]), "leads non-empty and >= 1, got penalties 3, tail 4, leads [0]"),
                         ((0, [1]), "penalties must be >= 1")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            avoidable("Pong", *bad)
    with pytest.raises(ValueError, match="unknown Atari100k game 'Pongg'"):
        avoidable("Pongg", 3, [1])


def test_a_returned_ball_is_lost_by_no_plan_a_step_before_and_by_some_held_action_six_before():
    """The first two balls random play returns (seed 0): from the step before the point would have been paid, the
    paddle's moves change nothing; from six before, holding some action loses each; the shares nest."""
    out = losable_returns(2, [1, 6], seed=0)
    assert out["actions"][0] == "NOOP" and out["steps"] > 2
    one, six = out["rows"]
    assert (one["returns"], six["returns"]) == (2, 2)
    assert one["held_any"] == one["held_all"] == 0 and six["held_any"] == 1, out
    for row in out["rows"]:
        assert row["held_all"] <= min(row["held"]) <= max(row["held"]) <= row["held_any"], row
    with pytest.raises(ValueError, match=re.escape("returns must be >= 1, tail >= 0 and leads non-empty and >= 1, "
                                                   "got returns 1, tail -1, leads [1]")):
        losable_returns(1, [1], tail=-1)


def _pong_frames(ball_columns, paddle_row=None):
    """Pong-like 64x64 frames: the background, with the ball (two pixels) at row 30 and each given column (None:
    no ball), the agent's paddle at ``paddle_row`` and the opponent's at row 20."""
    frames = np.broadcast_to(np.asarray(pong.BACKGROUND, np.uint8), (len(ball_columns), 64, 64, 3)).copy()
    for t, x in enumerate(ball_columns):
        if x is not None:
            frames[t, 30, x:x + 2] = 236
        if paddle_row is not None:
            frames[t, paddle_row:paddle_row + 4, 56:58] = (92, 186, 92)
        frames[t, 20:24, 6:8] = (213, 130, 74)
    return frames


def test_pong_readers_find_the_ball_the_paddles_and_the_returns():
    # RAM: a turn at 186 is a return; the opponent's turn (at 100) is not, nor a missed ball's 205 before a reset
    assert pong.returns_in_ram([100, 150, 186, 178, 100, 104, 190, 205, 0, 40]).tolist() == [2]
    # frames: a serve left of column 40 (rows 0-2), a point paid at row 3, the ball coming right to 54 (row 7), then
    # back across column 40 (row 10): one return, at row 7; the ball missing from row 8 carries its last column
    columns = [32, 30, 28, None, 30, 40, 48, 54, None, 46, 38, 30]
    frames = _pong_frames(columns, paddle_row=30)
    x = pong.ball_x_in_frames(frames)
    assert np.isnan(x[3]) and np.isnan(x[8]) and x[7] == 54.5 and x[0] == 32.5
    reward, first = np.zeros(12), np.zeros(12, bool)
    reward[3], first[0] = -1, True
    assert pong.returns_in_frames(frames, reward, first).tolist() == [7]
    reward[9] = -1  # a point paid between the turn and the crossing: the ball after it was never near the paddle
    assert pong.returns_in_frames(frames, reward, first).tolist() == []
    masks = pong.object_masks(frames[7])
    assert {name: int(pixels.sum()) for name, (_, pixels) in masks.items()} == {
        "ball": 2, "agent's paddle": 8, "opponent's paddle": 8}
    assert masks["ball"][1][30, 54:56].all() and masks["agent's paddle"][1][30:34, 56:58].all()
    assert {name: int(region.sum()) for name, (region, _) in masks.items()} == {
        "ball": 48 * 48, "agent's paddle": 48 * 2, "opponent's paddle": 48 * 2}


def test_avoidable_script_prints_a_row_per_lead_and_refuses_bad_leads(capsys):
    main = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "scripts", "atari_avoidable.py"),
                          run_name="script")["main"]
    out = main(["Pong", "--penalties", "1", "--leads", "1-2"])
    assert [row["lead"] for row in out["rows"]] == [1, 2]
    printed = capsys.readouterr().out
    assert "| lead (agent steps) | penalties | held: any | held: NOOP |" in printed
    assert re.search(r"\n\| 2 \| 1 \| 0\.00 \|( 0\.00 \|){6} 0\.00 \| 0\.00 \|\n", printed), printed
    out = main(["Pong", "--returns", "1", "--leads", "1"])
    assert [(row["lead"], row["returns"]) for row in out["rows"]] == [(1, 1)]
    printed = capsys.readouterr().out
    assert "| lead (agent steps) | returns | lost by some held action | lost holding NOOP |" in printed
    assert re.search(r"\n\| 1 \| 1 \| 0\.00 \|( 0\.00 \|){6} 0\.00 \|\n", printed), printed
    for argv, message in [(["Pong", "--leads", "a-3"], "leads are 'LO-HI' or 'K,K,...' (integers), got 'a-3'"),
                          (["Pong", "--penalties", "0"], "penalties must be >= 1"),
                          (["Pong", "--returns", "0"], "returns must be >= 1"),
                          (["Boxing", "--returns", "3"], "--returns reads Pong's RAM; got game 'Boxing'"),
                          (["Pongg"], "invalid choice: 'Pongg'")]:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err, argv
