"""CI learning check: a small world model trained on random-policy RepeatPreviousEasy data learns
what it can learn in a CI budget. Its posterior comes to encode the observed card (reconstruction
below the error of predicting the mean card; the KL terms keep it from encoding the card fully) and its reward head learns the reward distribution
(cross-entropy from ln 255 at initialisation to near the best a memoryless predictor can do).

The memory part of the task (reward depends on the card 4 steps back) is not asserted: at this size
and budget the reward head stays at the memoryless optimum (docs/RESULTS.md, world models on
POPGym). Fails if the world model (loss, gradients, optimiser, replay sampling, encoders) stops
learning."""

import jax
import jax.numpy as jnp
import numpy as np

from agents.world_model import config as wmc
from agents.world_model import replay as rb
from agents.world_model.agent import build, collect, init
from agents.world_model.world_model import world_model_loss

UPDATES = 200


def test_world_model_learns_observations_and_rewards():
    config = wmc.validate(wmc.preset(
        "popgym", env_name="RepeatPreviousEasy", model="s4wm", num_envs=8, hidden=32, num_layers=1, state_size=8,
        latent_groups=8, latent_classes=8, vector_hidden=64, mlp_hidden=32, ac_hidden=16, ac_layers=1,
        batch_size=16, batch_length=16, prefill=16, total_steps=400, wm_lr=1e-3))
    parts = build(config)
    state = jax.jit(lambda s: collect(parts, s, 300, random_policy=True)[0])(init(parts, jax.random.PRNGKey(0)))

    @jax.jit
    def update(params, opt, replay, key):
        k_batch, k_loss = jax.random.split(key)
        replay, batch = rb.sample(replay, k_batch, config.batch_size, config.batch_length)
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(params, parts.wm, config,
                                                                                     batch, k_loss)
        updates, opt = parts.wm_tx.update(grads, opt, params)
        return jax.tree.map(jnp.add, params, updates), opt, replay, metrics

    params, opt, replay = state.params["wm"], state.opt["wm"], state.replay
    history = []
    for i in range(UPDATES):
        params, opt, replay, metrics = update(params, opt, replay, jax.random.PRNGKey(i))
        history.append({k: float(v) for k, v in metrics.items()})
    first, last = history[0], {k: np.mean([h[k] for h in history[-20:]]) for k in history[0]}
    # one-hot suits in symlog space (0 or ln 2): predicting the mean card costs 4 * 0.75 * 0.25 * ln(2)^2
    mean_card_error = 4 * 0.75 * 0.25 * np.log(2.0) ** 2
    assert last["recon_loss"] < 0.7 * mean_card_error and last["recon_loss"] < 0.15 * first["recon_loss"], (first, last)
    # rewards +-1/48 (0 in the first 4 steps) sit between the 0 bin and its neighbours: ~0.47 nats without memory
    assert first["reward_loss"] > 5.0 and last["reward_loss"] < 0.7, (first, last)
