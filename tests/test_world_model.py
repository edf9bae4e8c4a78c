"""World-model agent parts: distributions, sequence models (step == parallel, resets), losses,
overfitting a tiny batch, replay sampling, imagination and actor-critic losses, configs."""

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssmrl.agents.params import count_params
from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model import distributions as D
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import build, init_params, observation_spec, open_loop, policy_step, train_step
from ssmrl.agents.world_model.behavior import actor_critic_losses, actor_policy, imagine, lambda_returns
from ssmrl.agents.world_model.networks import preprocess
from ssmrl.agents.world_model.world_model import (
    MOVING,
    ahead_mask,
    next_latents,
    state,
    value_bins,
    world_model_loss,
)

MODELS = ("drama", "s4wm", "rssm")
A = 4  # actions
TINY = dict(hidden=16, num_layers=1, state_size=4, latent_groups=4, latent_classes=4, channels=(4, 8, 8, 8, 8),
            kernel=3, mlp_hidden=16, mlp_layers=1, ac_hidden=16, ac_layers=1, imag_batch=6, imag_context=3, horizon=4,
            batch_size=2, batch_length=6, prefill=6, total_steps=20, train_every=1, updates_per_chunk=1)


def tiny(model, **kw):
    return wmc.validate(wmc.WorldModelConfig(model=model, **{**TINY, **kw}))


def frames(T, B, seed=0):
    """Black frames with a coloured square moving right: structured, so a tiny model can fit them."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((T, B, 64, 64, 3), np.uint8)
    for b in range(B):
        y, colour = rng.integers(0, 48), rng.integers(0, 3)
        for t in range(T):
            x = (4 * t + 8 * b) % 48
            obs[t, b, y:y + 16, x:x + 16, colour] = 255
    return jnp.asarray(obs)


def batch(T=6, B=2, first_at=None):
    first = np.zeros((T, B), bool)
    first[0] = True
    if first_at is not None:
        first[first_at] = True
    rng = np.random.default_rng(1)
    return {"obs": frames(T, B), "action": jnp.asarray(rng.integers(0, A, (T, B)), jnp.int32),
            "reward": jnp.asarray(rng.normal(size=(T, B)), jnp.float32),
            "term": jnp.asarray(rng.random((T, B)) < 0.1), "first": jnp.asarray(first)}


def make_parts(config):
    """Parts, parameters and jitted methods (eager Flax calls are slow on CPU)."""
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
    wm = parts.wm
    fns = SimpleNamespace(
        observe=jax.jit(lambda p, c, o, a, f, k: wm.apply(p, c, o, a, f, k, method="observe")),
        posterior=jax.jit(lambda p, c, o, f, k: wm.apply(p, c, o, f, k, method="posterior")),
        step=jax.jit(lambda p, c, z, a, f: wm.apply(p, c, z, a, f, method="imagine_step")),
        loss=jax.jit(lambda p, b, k: world_model_loss(p, wm, config, b, k)),
        decode=jax.jit(lambda p, z, h: wm.apply(p, z, h, method="decode")),
        follow=jax.jit(lambda p, c, z, a, f: wm.apply(p, c, z, a, f, method="follow")),
    )
    return parts, params, fns


@pytest.fixture(scope="module", params=[*MODELS, "s4wm-s5"])
def model_parts(request):
    """Each backbone, S4WM also with S5 blocks."""
    model, _, layer = request.param.partition("-")
    return make_parts(tiny(model, **({"s4wm_layer": layer} if layer else {})))


# ----------------------------------------------------------------------------- distributions

def test_symlog_symexp_invert():
    x = jnp.array([-1e4, -3.0, -0.5, 0.0, 0.7, 42.0, 1e5])
    np.testing.assert_allclose(D.symexp(D.symlog(x)), x, rtol=1e-5)


def test_twohot_encodes_and_decodes():
    bins = D.bin_values(255)
    x = jnp.array([-300.0, -1.0, 0.0, 0.3, 5.0, 21.0, 1000.0])
    code = D.twohot(x, bins)
    np.testing.assert_allclose(code.sum(-1), 1.0, rtol=1e-6)
    assert int((code > 0).sum(-1).max()) <= 2
    np.testing.assert_allclose(code @ bins, D.symlog(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(D.twohot_mean(jnp.log(code + 1e-12), bins), x, rtol=1e-3, atol=1e-3)
    # the loss is minimal at the true target
    logits = jnp.log(code + 1e-12)
    assert float(D.twohot_loss(logits, x, bins).max()) < float(D.twohot_loss(logits, x + 3.0, bins).min()) + 1.0


def test_categorical_latent_unimix_and_straight_through():
    logits = jnp.array([[[30.0, 0.0, 0.0, 0.0]] * 3])  # [1, G=3, C=4]
    logp = D.unimix_logits(logits, 0.01)
    assert float(jnp.exp(logp).min()) >= 0.01 / 4 - 1e-7
    z = D.sample_latent(jax.random.PRNGKey(0), logp)
    assert z.shape == (1, 12)
    np.testing.assert_allclose(z.reshape(3, 4).sum(-1), 1.0, rtol=1e-6)
    grad = jax.grad(lambda lg: (D.sample_latent(jax.random.PRNGKey(0), D.unimix_logits(lg, 0.01)) *
                                jnp.arange(12.0)).sum())(jax.random.normal(jax.random.PRNGKey(1), (1, 3, 4)))
    assert float(jnp.abs(grad).sum()) > 0  # straight-through gradients reach the logits
    np.testing.assert_allclose(D.categorical_kl(logp, logp), 0.0, atol=1e-6)


def test_lambda_returns_match_reference():
    rng = np.random.default_rng(0)
    H, N, gamma, lam = 5, 3, 0.9, 0.8
    r, c, v = rng.normal(size=(H, N)), (rng.random((H, N)) > 0.2).astype(float), rng.normal(size=(H + 1, N))
    ref = np.zeros((H, N))
    nxt = v[-1]
    for t in reversed(range(H)):
        ref[t] = r[t] + gamma * c[t] * ((1 - lam) * v[t + 1] + lam * nxt)
        nxt = ref[t]
    out = lambda_returns(jnp.asarray(r), jnp.asarray(c), jnp.asarray(v), gamma, lam)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- sequence models

def test_drama_size_parameters():
    """The atari100k preset's world model is Drama-sized (~7M parameters) for every backbone."""
    counts = {}
    for model in MODELS:
        parts = build(wmc.WorldModelConfig(model=model, **wmc.MODEL_DEFAULTS[model]), num_actions=6)
        shapes = jax.eval_shape(lambda k: init_params(parts, k), jax.random.PRNGKey(0))
        counts[model] = count_params(shapes["wm"])
    assert 5e6 < counts["drama"] < 9e6, counts
    for n in counts.values():
        assert 4e6 < n < 10e6, counts


def test_world_model_shapes_and_losses(model_parts):
    parts, params, fns = model_parts
    config = parts.config
    b = batch()
    loss, (out, metrics) = fns.loss(params["wm"], b, jax.random.PRNGKey(0))
    T, B, L, H = 6, 2, config.latent_size, config.hidden
    assert out["z"].shape == (T, B, L) and out["h"].shape == (T, B, H) and out["h_prev"].shape == (T, B, H)
    assert out["post"].shape == out["prior"].shape == (T, B, 4, 4)
    for name in ("wm_loss", "recon_loss", "reward_loss", "cont_loss", "dyn_kl", "rep_kl"):
        assert np.isfinite(float(metrics[name])), name
    # free bits: the balanced KL terms never fall below 1 nat each
    assert float(loss) >= float(metrics["recon_loss"] + metrics["reward_loss"] + metrics["cont_loss"]) + 0.6 - 1e-4
    decoded = fns.decode(params["wm"], out["z"], out["h_prev"])
    assert decoded.shape == (T, B, 64, 64, 3)


def vector_heads(reward_input: str):
    """``(parts, wm params)`` of a tiny RSSM on 5-vectors with random weights everywhere (the reward head's
    output layer starts at zero)."""
    parts = build(tiny("rssm", reward_input=reward_input), num_actions=A, obs_shape=(5,), obs_dtype=jnp.float32)
    leaves, tree = jax.tree.flatten(jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"])
    return parts, tree.unflatten([jax.random.normal(jax.random.PRNGKey(i), x.shape) for i, x in enumerate(leaves)])


@pytest.mark.parametrize("reward_input", wmc.REWARD_INPUTS)
def test_reward_head_reads_what_reward_input_names(reward_input):
    """after_action: reward and continue from h_t only; state_action and state_per_action: the reward from
    [s_t, a_t] only; next_state: from [z_{t+1}, h_t]."""
    parts, params = vector_heads(reward_input)
    ks = jax.random.split(jax.random.PRNGKey(1), 6)
    s, h = jax.random.normal(ks[0], (3, 16 + 16)), jax.random.normal(ks[1], (3, 16))
    z_next = jax.random.normal(ks[4], (3, 16))
    action = jnp.array([0, 1, 2])
    heads = jax.jit(lambda s, a, h, z: parts.wm.apply(params, s, a, h, z, method="heads"))
    reward, cont = heads(s, action, h, z_next)
    changed = {"s": heads(jax.random.normal(ks[2], s.shape), action, h, z_next),
               "action": heads(s, (action + 1) % A, h, z_next),
               "h": heads(s, action, jax.random.normal(ks[3], h.shape), z_next),
               "z_next": heads(s, action, h, jax.random.normal(ks[5], z_next.shape))}
    reads = {"after_action": {"h"}, "next_state": {"h", "z_next"}}.get(reward_input, {"s", "action"})
    for name, (new_reward, new_cont) in changed.items():
        assert (not np.allclose(new_reward, reward)) == (name in reads), name
        assert (not np.allclose(new_cont, cont)) == (name == "h"), name


def test_next_state_reward_is_learned_where_the_next_frame_is_in_the_episode():
    """reward_input=next_state reads r_t with the posterior of frame t+1: the loss does not read the window's
    last reward nor one whose next frame starts an episode, and reads every other, weighted by reward_loss_scale;
    the reward read in imagination is the head on the next state s_{k+1} = [z_{k+1}, h_k]."""
    config = tiny("rssm", reward_input="next_state")
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape), params)
    b = batch(T=6, B=2, first_at=(3, 1))
    reward_loss = jax.jit(jax.vmap(lambda r: world_model_loss(params["wm"], parts.wm, config, {**b, "reward": r},
                                                              jax.random.PRNGKey(0))[1][1]["reward_loss"]))
    moved = b["reward"] + 3.0 * np.eye(12, dtype=np.float32).reshape(12, 6, 2)  # one reward changed in each
    losses = np.asarray(reward_loss(jnp.concatenate([b["reward"][None], moved])))
    learned = np.ones((6, 2), bool)
    learned[5] = False      # no frame after the window's last step
    learned[2, 1] = False   # frame 3 of window 1 starts another episode
    np.testing.assert_array_equal((losses[1:] != losses[0]).reshape(6, 2), learned)
    weighted = {scale: world_model_loss(params["wm"], parts.wm, dataclasses.replace(config, reward_loss_scale=scale),
                                        b, jax.random.PRNGKey(0)) for scale in (1.0, 3.0)}
    np.testing.assert_allclose(weighted[3.0][0] - weighted[1.0][0], 2 * weighted[1.0][1][1]["reward_loss"],
                               rtol=1e-4)

    traj, logits = imagined_and_heads(parts, params)
    np.testing.assert_allclose(traj["reward"], D.twohot_mean(logits, value_bins(config)), atol=1e-4)


def test_recon_gradient_false_leaves_the_state_to_the_other_losses():
    """recon_gradient=False: the decoder's gradient as before, no reconstruction gradient at the encoder or the
    sequence model, and the reward's still there."""
    config = tiny("rssm")
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]
    # moved off init, where the zero-initialised reward head passes no gradient back
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape), params)
    b = batch()

    def grads(recon_gradient, term):
        def loss(p):
            return world_model_loss(p, parts.wm, dataclasses.replace(config, recon_gradient=recon_gradient), b,
                                    jax.random.PRNGKey(0))[1][1][term]

        return {k: float(optax.tree.norm(g)) for k, g in jax.jit(jax.grad(loss))(params)["params"].items()}

    shared, stopped = grads(True, "recon_loss"), grads(False, "recon_loss")
    assert shared["encoder"] > 0 and shared["sequence"] > 0
    assert stopped["encoder"] == stopped["sequence"] == 0.0
    np.testing.assert_allclose(stopped["observation_decoder"], shared["observation_decoder"], rtol=1e-5)
    assert grads(False, "reward_loss")["encoder"] > 0


def test_decoder_input_latent_draws_from_the_frames_latent_alone():
    """decoder_input="latent" (Drama): the decoder reads z_t, so the frame drawn is the same whatever h_{t-1} is, and
    the drama sequence model (in-projection, blocks) gets no reconstruction gradient, only its posterior head."""
    config = tiny("drama", decoder_input="latent")
    parts, params, fns = make_parts(config)
    params = params["wm"]
    _, out = fns.observe(params, parts.wm.initialize_carry(2), frames(6, 2), batch()["action"], batch()["first"],
                         jax.random.split(jax.random.PRNGKey(0), 6))
    drawn = fns.decode(params, out["z"], out["h_prev"])
    np.testing.assert_array_equal(drawn, fns.decode(params, out["z"], out["h_prev"] + 1.0))
    kernel = params["params"]["observation_decoder"]["Dense_0"]["kernel"]
    assert kernel.shape[0] == config.latent_groups * config.latent_classes, kernel.shape

    def recon(p):
        return world_model_loss(p, parts.wm, config, batch(), jax.random.PRNGKey(0))[1][1]["recon_loss"]

    grads = jax.jit(jax.grad(recon))(params)["params"]
    sequence = {k: float(optax.tree.norm(g)) for k, g in grads["sequence"].items()}
    assert float(optax.tree.norm(grads["encoder"])) > 0 and sequence.pop("post_head") > 0
    assert all(norm == 0.0 for norm in sequence.values()), sequence


def test_posterior_head_linear_is_one_dense_from_the_embedding():
    """posterior_head="linear": the posterior's head is one Dense to the latent's logits, from the frame's embedding
    (drama) or the embedding and h_{t-1} (rssm); the prior's head keeps its MLP, and the loss is finite."""
    inputs = {}
    for model in ("drama", "rssm"):
        config = tiny(model, posterior_head="linear")
        parts, params, fns = make_parts(config)
        sequence = params["wm"]["params"]["sequence"]
        assert list(sequence["post_head"]) == ["Dense_0"], list(sequence["post_head"])
        assert "LayerNorm_0" in sequence["prior_head"]
        kernel = sequence["post_head"]["Dense_0"]["kernel"]
        assert kernel.shape[1] == config.latent_groups * config.latent_classes
        inputs[model] = kernel.shape[0]
        assert np.isfinite(float(fns.loss(params["wm"], batch(), jax.random.PRNGKey(0))[0]))
    assert inputs["rssm"] == inputs["drama"] + TINY["hidden"], inputs


def test_action_input_separate_embeds_the_latent_and_the_action_apart():
    """action_input="separate": the latent's Dense reads z_t alone, the action's reads [a_t, first_t]; the sequence
    output answers the action through the action's embedding only (zeroing its action rows leaves one output for
    every action), and the loss is finite. The default, joint, reads all three in one Dense."""
    L = TINY["latent_groups"] * TINY["latent_classes"]
    joint = make_parts(tiny("drama"))[1]["wm"]["params"]["sequence"]
    assert joint["in_proj"]["kernel"].shape[0] == L + A + 1 and "action_proj" not in joint
    for model in ("drama", "rssm"):
        parts, params, fns = make_parts(tiny(model, action_input="separate"))
        sequence = params["wm"]["params"]["sequence"]
        assert sequence["in_proj"]["kernel"].shape[0] == L
        assert sequence["action_proj"]["kernel"].shape[0] == A + 1 and "action_norm" in sequence
        z = jax.nn.one_hot(jnp.zeros((A, TINY["latent_groups"]), int), TINY["latent_classes"]).reshape(A, L)
        carry = parts.wm.initialize_carry(A)

        def outputs(p):
            return np.asarray(fns.step(p, carry, z, jnp.arange(A), jnp.zeros((A,), bool))[1])

        h = outputs(params["wm"])
        assert np.abs(h[1:] - h[0]).max() > 1e-4, model  # each action its own output
        blind = jax.tree_util.tree_map(lambda x: x, params["wm"])
        kernel = blind["params"]["sequence"]["action_proj"]["kernel"]
        blind["params"]["sequence"]["action_proj"]["kernel"] = kernel.at[:A].set(0.0)
        h = outputs(blind)
        np.testing.assert_allclose(h[1:], np.broadcast_to(h[0], h[1:].shape), atol=1e-6, err_msg=model)
        assert np.isfinite(float(fns.loss(params["wm"], batch(), jax.random.PRNGKey(0))[0]))


def test_reward_zero_init_sets_whether_the_reward_gradient_reaches_the_state_from_the_first_update():
    """reward_zero_init (default): the reward head starts at 0 and its first gradient stops at its output layer;
    false: it reaches the encoder at once."""
    b = batch()

    def first_grads(**kw):
        config = tiny("rssm", reward_input="next_state", **kw)
        parts = build(config, num_actions=A)
        params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]

        def loss(p):
            return world_model_loss(p, parts.wm, config, b, jax.random.PRNGKey(0))[1][1]["reward_loss"]

        grads = jax.jit(jax.grad(loss))(params)["params"]
        out_layer = max(k for k in params["params"]["reward_head"] if k.startswith("Dense"))
        return grads, params["params"]["reward_head"][out_layer]["kernel"]

    (zero_grads, zero_kernel), (lecun_grads, lecun_kernel) = first_grads(), first_grads(reward_zero_init=False)
    assert not np.any(zero_kernel) and np.all(lecun_kernel != 0)
    assert float(optax.tree.norm(zero_grads["encoder"])) == 0.0
    assert float(optax.tree.norm(lecun_grads["encoder"])) > 0


def test_reward_norm_false_makes_the_reward_heads_hidden_layers_plain_dense():
    """reward_norm=false: the reward head's hidden layers are Dense with a bias and no LayerNorm; the other heads
    keep theirs."""
    def heads(**kw):
        parts = build(tiny("rssm", mlp_layers=2, **kw), num_actions=A)
        params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]["params"]
        return {name: jax.tree.map(jnp.shape, params[name]) for name in ("reward_head", "cont_head")}

    normed, plain = heads(), heads(reward_norm=False)
    H = TINY["mlp_hidden"]
    assert set(normed["reward_head"]) == {"Dense_0", "LayerNorm_0", "Dense_1", "LayerNorm_1", "Dense_2"}
    assert set(plain["reward_head"]) == {"Dense_0", "Dense_1", "Dense_2"}
    assert plain["reward_head"]["Dense_1"] == {"kernel": (H, H), "bias": (H,)}
    assert "bias" not in normed["reward_head"]["Dense_1"]
    assert plain["cont_head"] == normed["cont_head"]


def test_wm_eps_sets_how_far_a_tiny_gradient_moves_the_world_model():
    """Adam's first step is lr * g / (|g| + eps): a gradient of 1e-7 moves a parameter by ~lr with wm_eps=1e-8 and
    by ~lr / 100 with the default 1e-5, the world model's only (the actor's and critic's optimisers keep theirs)."""
    params = {"w": jnp.zeros(3)}
    tiny_grad = {"w": jnp.full(3, 1e-7)}

    def steps(**kw):
        parts = build(tiny("rssm", wm_lr=1.0, actor_lr=1.0, **kw), num_actions=A)
        return {name: float(-tx.update(tiny_grad, tx.init(params), params)[0]["w"][0])
                for name, tx in (("wm", parts.wm_tx), ("actor", parts.actor_tx))}

    small_eps, default = steps(wm_eps=1e-8), steps()
    np.testing.assert_allclose(small_eps["wm"], 1e-7 / (1e-7 + 1e-8), rtol=1e-4)
    np.testing.assert_allclose(default["wm"], 1e-7 / (1e-7 + 1e-5), rtol=1e-4)
    assert small_eps["actor"] == default["actor"]


def imagined_and_heads(parts, params):
    """An imagined trajectory from 5 starts and the reward head's output on it, from the heads applied again to
    each ``s_k, a_k`` and the next state ``s_{k+1} = [z_{k+1}, h_k]``."""
    N, L = 5, parts.config.latent_size
    z0 = jax.nn.one_hot(jnp.zeros((N, 4), int), 4).reshape(N, -1)
    traj = jax.jit(lambda p, k: imagine(parts.wm, p["wm"], actor_policy(parts.actor, p["actor"]),
                                        parts.wm.initialize_carry(N), z0, jnp.ones((N,), bool),
                                        parts.config.horizon, k))(params, jax.random.PRNGKey(2))
    after = traj["states"][1:]
    reward_out, _ = parts.wm.apply(params["wm"], traj["states"][:-1], traj["actions"], after[..., L:],
                                   after[..., :L], method="heads")
    return traj, reward_out


def test_symlog_mse_reward_output_is_one_symlog_number():
    """reward_output=symlog_mse: one output per reward (per action with state_per_action); the loss's reward term is
    its squared error against symlog(r), the predicted reward is its symexp, in imagination too."""
    config = tiny("rssm", reward_output="symlog_mse")
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape), params)
    b = batch(T=6, B=2)
    b["reward"] = 5.0 * b["reward"]  # symlog and its square differ from the identity here
    _, (out, metrics) = jax.jit(lambda p: world_model_loss(p, parts.wm, config, b, jax.random.PRNGKey(0)))(params["wm"])
    reward_out, _ = parts.wm.apply(params["wm"], state(out), b["action"], out["h"], next_latents(out), method="heads")
    assert reward_out.shape == (6, 2, 1)
    np.testing.assert_allclose(metrics["reward_loss"], np.mean((reward_out[..., 0] - D.symlog(b["reward"])) ** 2),
                               rtol=1e-5)
    np.testing.assert_allclose(parts.wm.reward_value(reward_out), D.symexp(reward_out[..., 0]), rtol=1e-6)

    traj, reward_out = imagined_and_heads(parts, params)
    np.testing.assert_allclose(traj["reward"], D.symexp(reward_out[..., 0]), rtol=1e-5)

    per_action = build(tiny("rssm", reward_output="symlog_mse", reward_input="state_per_action"), num_actions=A)
    per_action_params = jax.jit(lambda k: init_params(per_action, k))(jax.random.PRNGKey(0))["wm"]
    s = jnp.zeros((3, config.latent_size + config.hidden))
    assert per_action.wm.apply(per_action_params, s, method="reward_per_action").shape == (3, A, 1)


def test_per_action_reward_head_picks_the_taken_actions_distribution():
    """state_per_action: the reward logits of a_t are row a_t of one [A, bins] output read from s_t alone."""
    parts, params = vector_heads("state_per_action")
    s, h = jax.random.normal(jax.random.PRNGKey(1), (2, 16 + 16)), jnp.zeros((2, 16))
    heads = jax.jit(lambda a: parts.wm.apply(params, s, a, h, method="heads")[0])
    per_action = np.stack([heads(jnp.full((2,), a)) for a in range(A)], 1)  # [2, A, bins]
    mixed = heads(jnp.array([2, 0]))
    np.testing.assert_array_equal(mixed, per_action[[0, 1], [2, 0]])
    assert per_action.shape[-1] == parts.config.reward_bins and not np.allclose(per_action[:, 0], per_action[:, 1])


def test_observe_parallel_equals_step_mode(model_parts):
    """The context pass over a window (parallel scan with resets) is reproduced step for step by the
    posterior + imagine_step used when acting and imagining."""
    assert_observe_equals_steps(*model_parts)


def test_follow_fed_the_posterior_samples_is_the_posterior_pass(model_parts):
    """follow (the sequence fed given latents) fed observe's own samples gives observe's sequence outputs."""
    parts, params, fns = model_parts
    b = batch(first_at=(3, 1))
    carry, out = fns.observe(params["wm"], parts.wm.initialize_carry(2), b["obs"], b["action"], b["first"],
                             jax.random.split(jax.random.PRNGKey(4), 6))
    followed, h_prev, h = fns.follow(params["wm"], parts.wm.initialize_carry(2), out["z"], b["action"], b["first"])
    np.testing.assert_allclose(h_prev, out["h_prev"], atol=1e-5)
    np.testing.assert_allclose(h, out["h"], atol=1e-5)
    np.testing.assert_allclose(followed["h"], carry["h"], atol=1e-5)


def test_prior_reward_loss_reads_the_state_built_on_prior_samples():
    """prior_reward_scale adds that weight times a reward loss read from the sequence fed prior samples: its
    gradient reaches the prior head, which the posterior pass's reward loss never trains; where every frame starts
    an episode nothing is fed from the prior, and the two reward losses are one."""
    config = tiny("drama", reward_input="state_action", reward_zero_init=False)
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]
    b = batch()

    def metrics(p, scale, window):
        on = dataclasses.replace(config, prior_reward_scale=scale)
        loss, (_, m) = world_model_loss(p, parts.wm, on, window, jax.random.PRNGKey(0))
        return loss, m

    losses = jax.jit(metrics, static_argnums=1)
    (off, _), (on, m) = losses(params, 0.0, b), losses(params, 3.0, b)
    np.testing.assert_allclose(on - off, 3.0 * m["prior_reward_loss"], rtol=1e-5)
    assert abs(float(m["prior_reward_loss"] - m["reward_loss"])) > 1e-4

    def prior_head_grad(term):
        grad = jax.jit(jax.grad(lambda p: losses(p, 3.0, b)[1][term]))(params)["params"]
        return float(optax.tree.norm(grad["sequence"]["prior_head"]))

    assert prior_head_grad("prior_reward_loss") > 0
    assert prior_head_grad("reward_loss") == 0.0
    every_first = {**b, "first": jnp.ones_like(b["first"])}
    _, m = losses(params, 3.0, every_first)
    np.testing.assert_allclose(m["prior_reward_loss"], m["reward_loss"], rtol=1e-5)


def test_recon_moving_loss_is_the_squared_error_on_the_values_that_move():
    """recon_moving_weight adds that weight times the frames' squared error summed over the values more than MOVING
    from the window's per-value median over its rows (the moving square's, not the still background's), averaged over
    the frames; at 0 it is not computed."""
    config = tiny("drama", recon_moving_weight=5.0)
    parts = build(config, num_actions=A)
    wm, params = parts.wm, jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]
    b, key = batch(), jax.random.PRNGKey(0)

    def loss_and_metrics(p, c):
        loss, (out, m) = world_model_loss(p, wm, c, b, key)
        return loss, m, wm.apply(p, out["z"], out["h_prev"], method="decode")

    losses = jax.jit(loss_and_metrics, static_argnums=1)
    (off, m_off, _), (on, m, drawn) = losses(params, dataclasses.replace(config, recon_moving_weight=0.0)), \
        losses(params, config)
    assert "recon_moving_loss" not in m_off
    np.testing.assert_allclose(on - off, 5.0 * m["recon_moving_loss"], rtol=1e-5)
    real = np.asarray(preprocess(b["obs"]))
    moving = np.abs(real - np.median(real, axis=0)) > MOVING
    assert 0 < moving.mean() < 0.1  # the square's edges as it moves, not the black background
    errors = (np.asarray(drawn) - real) ** 2
    np.testing.assert_allclose(m["recon_moving_loss"], np.where(moving, errors, 0.0).sum((2, 3, 4)).mean(), rtol=1e-5)
    assert float(m["recon_moving_loss"]) < 0.5 * float(m["recon_loss"])


def test_ahead_mask_keeps_the_later_rewards_of_h_ts_episode_in_the_window():
    first = np.zeros((6, 1), bool)
    first[[0, 3]] = True
    mask = np.asarray(ahead_mask(jnp.asarray(first), 2))[..., 0]
    np.testing.assert_array_equal(mask, [[1, 1, 0, 1, 1, 0], [1, 0, 0, 1, 0, 0]])


def test_reward_ahead_heads_read_later_rewards_from_the_state():
    """reward_ahead=K adds, each head at the reward's weight, the symlog error of head k's r_{t+k} read from h_t and
    the actions a_{t+1} .. a_{t+k}, its mean where that reward is in the window and h_t's episode (the metric: the
    heads' mean); head k at t reads no action after a_{t+k}; its gradient reaches the backbone and not the reward
    head."""
    K, T = 2, 6
    config = tiny("drama", reward_ahead=K, reward_output="symlog_mse", reward_zero_init=False, reward_loss_scale=3.0)
    parts = build(config, num_actions=A)
    wm, params = parts.wm, jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]
    b, key = batch(first_at=(3, 1)), jax.random.PRNGKey(2)

    def loss_and_metrics(p, c):
        loss, (_, m) = world_model_loss(p, wm, c, b, key)
        return loss, m

    losses = jax.jit(loss_and_metrics, static_argnums=1)
    (off, _), (on, m) = losses(params, dataclasses.replace(config, reward_ahead=0)), losses(params, config)
    np.testing.assert_allclose(on - off, 3.0 * K * m["reward_ahead_loss"], rtol=1e-3)  # beside a loss in the thousands

    _, out = jax.jit(lambda p: wm.apply(p, wm.initialize_carry(2), b["obs"], b["action"], b["first"],
                                        jax.random.split(key, T), method="observe"))(params)
    ahead = jax.jit(lambda p, a: wm.apply(p, out["h"], a, method="rewards_ahead"))
    predicted = np.asarray(ahead(params, b["action"]))[..., 0]  # [K, T, B] symlog
    reward, first = np.asarray(b["reward"]), np.asarray(b["first"])
    head_means = [np.mean([(predicted[k - 1, t, i] - np.sign(reward[t + k, i]) * np.log1p(abs(reward[t + k, i]))) ** 2
                           for t in range(T - k) for i in range(2) if not first[t + 1:t + k + 1, i].any()])
                  for k in range(1, K + 1)]
    np.testing.assert_allclose(m["reward_ahead_loss"], np.mean(head_means), rtol=1e-5)

    changed = np.asarray(ahead(params, b["action"].at[4].set((b["action"][4] + 1) % A)))[..., 0] != predicted
    np.testing.assert_array_equal(changed.any(-1), [[0, 0, 0, 1, 0, 0], [0, 0, 1, 1, 0, 0]])  # h_t is given

    def grad_norm(part):
        grad = jax.jit(jax.grad(lambda p: losses(p, config)[1]["reward_ahead_loss"]))(params)["params"]
        return float(optax.tree.norm(part(grad)))

    assert grad_norm(lambda g: g["sequence"]["backbone"]) > 0
    assert grad_norm(lambda g: g["reward_head"]) == 0.0


@pytest.mark.parametrize("layer", ["lru", "mingru", "linear_attention", "transformer"])
def test_s4wm_takes_any_registry_layer(layer):
    assert_observe_equals_steps(*make_parts(tiny("s4wm", s4wm_layer=layer)))


def assert_observe_equals_steps(parts, params, fns):
    b = batch(first_at=(3, 1))
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    carry0 = parts.wm.initialize_carry(2)
    carry_p, out = fns.observe(params["wm"], carry0, b["obs"], b["action"], b["first"], keys)
    carry = carry0
    for t in range(6):
        z, logp, h_prev = fns.posterior(params["wm"], carry, b["obs"][t], b["first"][t], keys[t])
        carry, h = fns.step(params["wm"], carry, z, b["action"][t], b["first"][t])
        np.testing.assert_allclose(z, out["z"][t], atol=1e-6)
        np.testing.assert_allclose(logp, out["post"][t], atol=1e-4)
        np.testing.assert_allclose(h_prev, out["h_prev"][t], atol=1e-4)
        np.testing.assert_allclose(h, out["h"][t], atol=1e-4)
    for x, y in zip(jax.tree_util.tree_leaves(carry), jax.tree_util.tree_leaves(carry_p)):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_reset_inside_window_equals_two_windows(model_parts):
    parts, params, fns = model_parts
    b = batch(first_at=(3, slice(None)))
    keys = jax.random.split(jax.random.PRNGKey(4), 6)
    fresh = parts.wm.initialize_carry(2)

    def run(sl, carry):
        return fns.observe(params["wm"], carry, b["obs"][sl], b["action"][sl], b["first"][sl], keys[sl])

    _, whole = run(slice(0, 6), fresh)
    carry_a, first_half = run(slice(0, 3), fresh)
    _, second_half = run(slice(3, 6), fresh)
    _, second_after_first = run(slice(3, 6), carry_a)  # the reset at step 3 makes the carry irrelevant
    for name in ("z", "h", "h_prev", "prior"):
        joined = jnp.concatenate([first_half[name], second_half[name]], 0)
        np.testing.assert_allclose(whole[name], joined, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(second_after_first[name], second_half[name], atol=1e-4, err_msg=name)


def test_episode_start_differs_from_window_start(model_parts):
    """Both start from zeros; only the ``first`` input tells an episode's first frame from a window's
    (a window of replay or an imagination context that begins mid-episode)."""
    parts, params, fns = model_parts
    b = batch()
    keys = jax.random.split(jax.random.PRNGKey(5), 6)
    fresh = parts.wm.initialize_carry(2)
    _, episode = fns.observe(params["wm"], fresh, b["obs"], b["action"], b["first"], keys)
    _, window = fns.observe(params["wm"], fresh, b["obs"], b["action"], jnp.zeros_like(b["first"]), keys)
    np.testing.assert_allclose(episode["h_prev"][0], window["h_prev"][0])  # zeros either way
    assert not np.allclose(episode["h"][0], window["h"][0], atol=1e-3)


def fit_tiny_batch(model: str, B: int, lr: float, steps: int = 60, **config) -> list[dict]:
    """Metrics of each of ``steps`` Adam steps of a tiny world model fitting one batch of frames."""
    config = tiny(model, hidden=32, mlp_hidden=32, **config)
    parts = build(config, num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))["wm"]
    b = batch(T=4, B=B)
    tx = optax.adam(lr)

    @jax.jit
    def update(params, opt):
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(
            params, parts.wm, config, b, jax.random.PRNGKey(0))
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, metrics

    opt = tx.init(params)
    history = []
    for _ in range(steps):
        params, opt, metrics = update(params, opt)
        history.append({k: float(v) for k, v in metrics.items()})
    return history


@pytest.mark.parametrize("model", ["drama", "rssm"])
def test_world_model_overfits_tiny_batch(model):
    losses = [m["wm_loss"] for m in fit_tiny_batch(model, B=1, lr=1e-2)]
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_subpixel_decoder_reconstructs_as_well_as_conv_transpose():
    """The sub-pixel decoder (fast gradients) fits the same frames as the ConvTranspose baseline."""
    fits = {}
    for decoder in ("subpixel", "conv_transpose"):
        history = fit_tiny_batch("drama", B=2, lr=3e-3, decoder=decoder)
        fits[decoder] = (history[0]["recon_loss"], history[-1]["recon_loss"])
    for first, last in fits.values():
        assert last < first / 5, fits
    assert fits["subpixel"][1] < 1.5 * fits["conv_transpose"][1], fits


def test_conv_with_matmul_weight_grad_equals_flax_conv():
    """conv.Conv is nn.Conv (same parameter tree and initialisation, same outputs) with the same gradients,
    its weight gradient matmuls where both channel counts allow it, for strides 1 and 2 and odd sizes."""
    import flax.linen as nn

    from ssmrl.agents.world_model.conv import MATMUL_MIN_CHANNELS, Conv, matmul_weight_grad
    key = jax.random.PRNGKey(0)
    for shape, features, k, stride in [((3, 10, 10, 8), 16, 4, 2), ((2, 5, 7, 16), 8, 3, 1), ((2, 9, 9, 12), 10, 5, 2),
                                       ((2, 8, 8, 3), 16, 5, 1)]:
        x = jax.random.normal(key, shape)
        ours, flax_conv = Conv(features, k, stride), nn.Conv(features, (k, k), strides=stride)
        params, flax_params = ours.init(key, x), flax_conv.init(key, x)
        jax.tree_util.tree_map(np.testing.assert_array_equal, params, flax_params)  # same tree, same values
        np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(flax_params, x), atol=1e-5)
        grads = [jax.jit(jax.grad(lambda p, x, m=m: jnp.sum(jnp.sin(m.apply(p, x))), argnums=(0, 1)))(params, x)
                 for m in (ours, flax_conv)]
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *grads)
        if min(shape[-1], features) >= MATMUL_MIN_CHANNELS:
            dy = jax.random.normal(key, ours.apply(params, x).shape)
            w = params["params"]["kernel"]
            conv = lambda w_: jax.lax.conv_general_dilated(x, w_, (stride, stride), "SAME",  # noqa: E731
                                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
            np.testing.assert_allclose(matmul_weight_grad(x, dy, k, stride), jax.vjp(conv, w)[1](dy)[0],
                                       rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,c_in,c_out,k,stride", [(10, 8, 16, 4, 2), (9, 12, 10, 5, 2), (11, 3, 5, 3, 2),
                                                     (8, 4, 6, 2, 2), (13, 5, 7, 5, 3), (7, 2, 3, 1, 2)])
def test_phase_split_input_grad_equals_xla(size, c_in, c_out, k, stride):
    """A strided conv's input gradient as one stride-1 conv and depth-to-space equals XLA's, for odd sizes, kernels
    smaller than, equal to and larger than the stride, and strides 2 and 3."""
    from ssmrl.agents.world_model.conv import phase_input_grad, xla_conv, xla_input_grad
    kx, kw, ky = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2, size, size + 1, c_in))
    w = jax.random.normal(kw, (k, k, c_in, c_out))
    dy = jax.random.normal(ky, xla_conv(x, w, stride).shape)
    np.testing.assert_allclose(phase_input_grad(x.shape, w, dy, stride), xla_input_grad(x, w, dy, stride),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("obs_shape,dtype", [((4,), jnp.float32), ((10, 5), jnp.float32), ((10, 10, 4), jnp.float32),
                                                   ((9, 7, 3), jnp.uint8)])
def test_vector_and_image_observations_of_any_size(obs_shape, dtype):
    """MLP encoder/decoder for vectors, convs for images of any size (MinAtar 10x10xC, odd sizes):
    losses finite, reconstructions and open-loop predictions in the observation's shape and dtype."""
    config = tiny("drama", channels=(4, 8, 8))
    parts = build(config, num_actions=A, obs_shape=obs_shape, obs_dtype=dtype)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
    T, B = 5, 2
    obs = jax.random.uniform(jax.random.PRNGKey(1), (T, B, *obs_shape), maxval=255 if dtype == jnp.uint8 else 1)
    b = {**batch(T=T, B=B), "obs": obs.astype(dtype)}
    loss, (out, metrics) = jax.jit(lambda p: world_model_loss(p, parts.wm, config, b, jax.random.PRNGKey(0)))(
        params["wm"])
    assert all(np.isfinite(float(v)) for v in metrics.values())
    decoded = jax.jit(lambda p, z, h: parts.wm.apply(p, z, h, method="decode"))(params["wm"], out["z"], out["h_prev"])
    assert decoded.shape == (T, B, *obs_shape)
    pred = jax.jit(open_loop, static_argnums=(0, 5))(parts, params["wm"], b["obs"], b["action"], b["first"], 2,
                                                     jax.random.PRNGKey(0))
    assert pred.shape == (T, B, *obs_shape) and pred.dtype == dtype
    first_layer = "Dense_0" if len(obs_shape) < 3 else "Conv_0"  # an MLP for vectors and grids, convs for images
    assert first_layer in params["wm"]["params"]["encoder"], list(params["wm"]["params"]["encoder"])


def test_vector_encoder_sees_the_size_of_its_input():
    """Dense then LayerNorm gives ``x`` and ``c x`` (c > 0) the same features unless the Dense has a bias: the vector
    encoder's first layer has one, so two positive scalars are told apart (random weights, bias included)."""
    from ssmrl.agents.world_model.networks import VectorEncoder

    encoder = VectorEncoder(obs_shape=(1,), hidden=8, layers=2)
    params = encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    leaves, tree = jax.tree.flatten(params)
    params = tree.unflatten([jax.random.normal(jax.random.PRNGKey(i), x.shape) for i, x in enumerate(leaves)])
    small, large = encoder.apply(params, jnp.array([[0.5], [3.0]]))
    assert not np.allclose(small, large, atol=1e-3)
    assert "bias" in params["params"]["Dense_0"] and "bias" not in params["params"]["Dense_1"]


def test_episode_ends_take_life_loss_from_info_where_given():
    from ssmrl.agents.world_model.agent import episode_ends

    term = jnp.array([True, False, False])
    np.testing.assert_array_equal(episode_ends(term, {}), [True, False, False])
    np.testing.assert_array_equal(episode_ends(term, {"life_loss": jnp.array([True, True, False])}),
                                  [True, True, False])


# ----------------------------------------------------------------------------- replay

def test_replay_windows_valid_and_dfs_prefers_fresh_starts():
    replay = rb.init_replay(capacity=12, num_envs=2, obs_shape=(64, 64, 3))
    for t in range(10):
        replay = rb.add(replay, jnp.full((2, 64, 64, 3), t, jnp.uint8), jnp.array([t, 100 + t]),
                        jnp.zeros(2), jnp.zeros(2, bool), jnp.array([t == 0, t == 0]))
    assert int(replay.size) == 10
    replay2, w = rb.sample(replay, jax.random.PRNGKey(0), 64, 4)
    assert w["obs"].shape == (4, 64, 64, 64, 3)
    a = np.asarray(w["action"]) % 100
    np.testing.assert_array_equal(np.diff(a, axis=0), 1)  # consecutive rows of one env
    assert a.max() <= 9  # never past the written rows
    np.testing.assert_array_equal(np.asarray(w["obs"])[:, :, 0, 0, 0], a)
    assert int(replay2.trained.sum()) == 64
    # DFS: after many draws from starts 0..3, fresh starts dominate
    trained = replay.trained.at[:4].set(100)
    logits = rb.start_logits(replay.replace(trained=trained), 4, "dfs", 10.0, imagination=False)
    probs = np.asarray(jax.nn.softmax(logits.reshape(-1))).reshape(12, 2)
    assert probs[:4].sum() < 1e-3 and probs[7:].sum() == 0.0  # starts 7.. would run past row 9
    _, w = rb.sample(replay.replace(trained=trained), jax.random.PRNGKey(1), 64, 4, "dfs")
    assert (np.asarray(w["action"])[0] % 100 >= 4).all()


# ----------------------------------------------------------------------------- behaviour and a full update

def test_imagination_and_actor_critic(model_parts):
    parts, params, _ = model_parts
    config = parts.config
    N = 5
    carry = parts.wm.initialize_carry(N)
    z0 = jax.nn.one_hot(jnp.zeros((N, 4), int), 4).reshape(N, -1)
    traj = jax.jit(lambda p, c, z, k: imagine(parts.wm, p["wm"], actor_policy(parts.actor, p["actor"]), c, z,
                                              jnp.ones((N,), bool), config.horizon, k))(
        params, carry, z0, jax.random.PRNGKey(0))
    H, S = config.horizon, config.latent_size + config.hidden
    assert traj["states"].shape == (H + 1, N, S) and traj["actions"].shape == (H, N)
    assert traj["reward"].shape == traj["cont"].shape == (H, N)

    def loss(ac):
        a, c, scale, m = actor_critic_losses(ac["actor"], ac["critic"], params["slow_critic"], parts.actor,
                                             parts.critic, traj, jnp.float32(0.0), config)
        return a + c, m

    grads, m = jax.jit(jax.grad(loss, has_aux=True))({"actor": params["actor"], "critic": params["critic"]})
    assert all(np.isfinite(float(v)) for v in m.values())
    assert float(optax.tree.norm(grads["actor"])) > 0 and float(optax.tree.norm(grads["critic"])) > 0


def test_deterministic_policy_step_takes_the_actors_likeliest_action(model_parts):
    """Greedy acting (``train/evaluate.py deterministic=true``) is the argmax of the actor on the same sampled
    latent; sampling, from the same key, differs from it somewhere (a near-uniform untrained actor)."""
    parts, params, fns = model_parts
    E = 16
    obs, first = batch(T=1, B=E)["obs"][0], jnp.ones(E, bool)
    carry, key = parts.wm.initialize_carry(E), jax.random.PRNGKey(3)
    act = jax.jit(lambda p, k, d: policy_step(parts, p, carry, obs, first, k, d)[1], static_argnums=2)
    z, _, h_prev = fns.posterior(params["wm"], carry, obs, first, jax.random.split(key)[0])
    likeliest = jnp.argmax(parts.actor.apply(params["actor"], jnp.concatenate([z, h_prev], -1)), -1)
    np.testing.assert_array_equal(act(params, key, True), likeliest)
    assert (act(params, key, False) != likeliest).any()


def replay_state(parts, params):
    """An agent state over an 8-step replay of :func:`batch` (no env needed): ``(state, batch)``."""
    from ssmrl.agents.world_model.agent import AgentState

    replay = rb.init_replay(8, 1)
    b = batch(T=8, B=1)
    for t in range(8):
        replay = rb.add(replay, b["obs"][t], b["action"][t], b["reward"][t], b["term"][t], b["first"][t])
    opt = {"wm": parts.wm_tx.init(params["wm"]), "actor": parts.actor_tx.init(params["actor"]),
           "critic": parts.critic_tx.init(params["critic"])}
    state = AgentState(params=params, opt=opt, return_scale=jnp.float32(0), replay=replay, env_state=None,
                       obs=b["obs"][0], first=jnp.ones(1, bool), carry=parts.wm.initialize_carry(1),
                       ep_return=jnp.zeros(1), key=jax.random.PRNGKey(1), env_steps=jnp.int32(8),
                       updates=jnp.int32(0))
    return state, b


@pytest.mark.parametrize("reward_input", ["after_action", "next_state"])
def test_train_step_and_open_loop(reward_input):
    """One jitted update over a replay (no env needed) and the open-loop video prediction."""
    parts = build(tiny("drama", sampler="dfs", reward_input=reward_input), num_actions=A)
    params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
    state, b = replay_state(parts, params)
    new, metrics = jax.jit(lambda s: train_step(parts, s))(state)
    assert int(new.updates) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
    assert int(new.replay.trained.sum()) == parts.config.batch_size
    assert int(new.replay.imagined.sum()) == parts.config.imag_batch
    assert float(optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, new.params["wm"], params["wm"]))) > 0
    pred = jax.jit(open_loop, static_argnums=(0, 5))(parts, params["wm"], b["obs"], b["action"], b["first"], 3,
                                                     jax.random.PRNGKey(0))
    assert pred.shape == (8, 1, 64, 64, 3) and pred.dtype == jnp.uint8


def test_bf16_precision_reaches_the_dense_layers_and_keeps_the_update():
    """``precision=bf16``: the update's dense layers multiply bf16 operands (none do in f32), and from the same
    state it gives nearly the same losses and parameters as f32, though not the same to the bit."""
    updates, dots = {}, {}
    for precision in ("f32", "bf16"):
        parts = build(tiny("drama", precision=precision), num_actions=A)
        params = jax.jit(lambda k: init_params(parts, k))(jax.random.PRNGKey(0))
        state, _ = replay_state(parts, params)
        step = lambda s: train_step(parts, s)  # noqa: E731
        dots[precision] = str(jax.make_jaxpr(step)(state)).count("bf16[")
        updates[precision] = jax.jit(step)(state)
    assert dots["f32"] == 0 and dots["bf16"] > 0, dots
    (new32, m32), (new16, m16) = updates["f32"], updates["bf16"]
    assert m32["recon_loss"] != m16["recon_loss"]
    for name in ("recon_loss", "reward_loss", "actor_loss"):
        np.testing.assert_allclose(m16[name], m32[name], rtol=2e-2, atol=1e-3, err_msg=name)
    step_norm = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, new32.params["wm"], params["wm"]))
    gap = optax.tree.norm(jax.tree_util.tree_map(jnp.subtract, new16.params["wm"], new32.params["wm"]))
    # Adam's first step is lr * sign(g) per parameter: rounding flips the signs of the near-zero gradients only
    # (the gap measured 24% of the step's norm)
    assert 0.0 < float(gap) < 0.5 * float(step_norm), (gap, step_norm)


# ----------------------------------------------------------------------------- configuration

def test_config_errors_name_bad_values():
    with pytest.raises(ValueError, match=r"unknown model 'dreamer'; valid: \['drama', 's4wm', 'rssm'\]"):
        wmc.validate(wmc.WorldModelConfig(model="dreamer"))
    with pytest.raises(ValueError, match=r"unknown env_name 'atari/Pongg'; valid: \[.*'RepeatPreviousEasy'"):
        wmc.validate(wmc.WorldModelConfig(env_name="atari/Pongg"))
    with pytest.raises(ValueError, match=r"unknown decoder 'deconv'; valid: \['subpixel', 'conv_transpose'\]"):
        wmc.validate(wmc.WorldModelConfig(decoder="deconv"))
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        wmc.preset("tiny")
    with pytest.raises(ValueError, match="unknown sampler"):
        wmc.validate(wmc.WorldModelConfig(sampler="prioritized"))
    with pytest.raises(ValueError, match=r"unknown config key 'hiden'; valid: .*'hidden'"):
        wmc.from_mapping({"hiden": 3})
    with pytest.raises(ValueError, match="prefill"):
        wmc.validate(wmc.WorldModelConfig(prefill=10))
    video_env = SimpleNamespace(action_space=lambda p: SimpleNamespace(n=3),  # refused before anything compiles
                                observation_space=lambda p: SimpleNamespace(shape=(2, 3, 4, 5), dtype=jnp.uint8))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\) are not supported; valid: \[D\] vectors, \[D1, D2\] grids"):
        observation_spec(video_env, None)


@pytest.mark.parametrize("name", sorted(wmc.PRESETS))
def test_presets_yaml_match_python(name):
    import yaml

    with open(f"configs/world_model/preset/{name}.yaml") as f:
        values = yaml.safe_load(f)
    assert dataclasses.replace(wmc.preset(name)) == wmc.from_mapping(values)


@pytest.mark.parametrize("preset", sorted(wmc.PRESETS))
def test_python_presets_build_the_cli_model(preset):
    """``wmc.preset(name, model=m)`` is the config the CLI composes from ``preset=name model=m``: the model
    groups' own settings (S4WM's state size) included, which the Python presets once left at Drama's."""
    from hydra import compose, initialize

    from ssmrl.experiment.config import parse

    with initialize(version_base="1.3", config_path="../configs/world_model"):
        for model in wmc.MODELS:
            cfg = compose("world_model", ["env=popgym", "env.name=RepeatPreviousEasy", f"preset={preset}",
                                          f"model={model}"])
            assert parse("world_model", cfg).agent == wmc.preset(preset, model=model, env_name="RepeatPreviousEasy")
    assert wmc.preset(preset, model="s4wm").state_size == 64
    with pytest.raises(ValueError, match=r"unknown world-model backbone 'dreamer'; valid: \['drama', 'rssm', 's4wm'\]"):
        wmc.preset(preset, model="dreamer")


def test_cli_names_envs_as_ppo_does():
    """``env=popgym env.name=...``, ``env=gymnax env.name=...``, ``env=atari env.name=atari/...`` compose into
    configs whose env names are registered; a bad name fails in validation, before anything compiles."""

    from hydra import compose, initialize

    from ssmrl.experiment.config import parse

    def to_config(cfg):
        return parse("world_model", cfg).agent

    cases = {("env=popgym", "env.name=RepeatFirstEasy", "preset=popgym", "model=s4wm"): "RepeatFirstEasy",
             ("env=gymnax", "env.name=Breakout-MinAtar", "model=rssm"): "Breakout-MinAtar",
             ("env=atari", "env.name=atari/Boxing", "preset=atari100k"): "atari/Boxing"}
    with initialize(version_base="1.3", config_path="../configs/world_model"):
        for overrides, name in cases.items():
            config = to_config(compose("world_model", overrides=list(overrides)))
            assert config.env_name == name and config.env_options == ()
        assert to_config(compose("world_model", ["env=popgym", "preset=popgym"])).num_envs == 8
        with pytest.raises(ValueError, match="unknown env.name 'RepeatPreviousEasyy'"):
            to_config(compose("world_model", ["env=popgym", "env.name=RepeatPreviousEasyy"]))

