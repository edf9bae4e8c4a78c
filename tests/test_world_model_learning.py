"""CI learning check: on a tiny memory task the world model learns to predict reward far better than
chance, which needs memory. RepeatPreviousEasy pays +-1/48 for naming the suit of the card seen 4
steps earlier; under a random policy a predictor without memory can do no better than the mean
reward. Fails if the world model (its loss, gradients, replay sampling or sequence model) stops
learning."""

import jax
import jax.numpy as jnp
import numpy as np

from agents.world_model import config as wmc
from agents.world_model import replay as rb
from agents.world_model.agent import build, collect, init
from agents.world_model.distributions import bin_values, twohot_mean
from agents.world_model.world_model import world_model_loss

UPDATES = 300


def test_world_model_predicts_reward_from_memory():
    config = wmc.validate(wmc.preset(
        "popgym", env_name="RepeatPreviousEasy", model="s4wm", num_envs=8, hidden=32, num_layers=1, state_size=8,
        latent_groups=8, latent_classes=8, vector_hidden=64, mlp_hidden=32, ac_hidden=16, ac_layers=1,
        batch_size=16, batch_length=16, prefill=16, total_steps=400, wm_lr=1e-3))
    parts = build(config)
    state = init(parts, jax.random.PRNGKey(0))
    gather = jax.jit(lambda s: collect(parts, s, 300, random_policy=True)[0])
    state = gather(state)
    train_replay = state.replay
    held_out = gather(state.replace(replay=rb.init_replay(config.capacity, config.num_envs, parts.obs_shape,
                                                           parts.obs_dtype))).replay

    @jax.jit
    def update(params, opt, replay, key):
        k_batch, k_loss = jax.random.split(key)
        replay, batch = rb.sample(replay, k_batch, config.batch_size, config.batch_length)
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(params, parts.wm, config,
                                                                                     batch, k_loss)
        updates, opt = parts.wm_tx.update(grads, opt, params)
        return jax.tree.map(jnp.add, params, updates), opt, replay

    @jax.jit
    def reward_errors(params, key):
        k_batch, k_obs = jax.random.split(key)
        _, batch = rb.sample(held_out, k_batch, 64, config.batch_length)
        T, B = batch["first"].shape
        _, out = parts.wm.apply(params, parts.wm.initialize_carry(B), batch["obs"], batch["action"], batch["first"],
                                jax.random.split(k_obs, T), method="observe")
        logits, _ = parts.wm.apply(params, out["h"], method="heads")
        predicted = twohot_mean(logits, bin_values(config.reward_bins))
        # the 5th step of a window on: the card 4 steps back is inside it
        model = jnp.mean((predicted - batch["reward"])[4:] ** 2)
        chance = jnp.mean((batch["reward"] - jnp.mean(batch["reward"]))[4:] ** 2)
        return model, chance

    params, opt = state.params["wm"], state.opt["wm"]
    before, chance = reward_errors(params, jax.random.PRNGKey(1))
    for i in range(UPDATES):
        params, opt, train_replay = update(params, opt, train_replay, jax.random.PRNGKey(100 + i))
    after, chance = reward_errors(params, jax.random.PRNGKey(1))
    assert float(after) < 0.2 * float(chance), (float(before), float(after), float(chance))
