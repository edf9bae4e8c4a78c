"""CI learning check: a small world model trained on random-policy RepeatPreviousEasy data learns
what it can learn in a CI budget. Its posterior comes to encode the observed card (reconstruction
far below the error of predicting the mean card) and
its reward head learns the reward distribution (cross-entropy from ln 255 at initialisation to near
the best a memoryless predictor can do).

The memory part of the task (reward depends on the card 3 steps back) is not asserted: the reward head
leaves the memoryless plateau between 500 and 1000 updates, beyond a CI budget (docs/RESULTS.md,
world models on POPGym; scripts/world_model_reward_probe.py). Fails if the world model (loss,
gradients, optimiser, replay sampling, encoders) stops learning."""

import jax
import numpy as np

from ssmrl.agents.world_model.probe import fit_world_model, random_policy_replay, small_parts


def test_world_model_learns_observations_and_rewards():
    parts = small_parts("s4wm")
    replay = random_policy_replay(parts, jax.random.PRNGKey(0), 300)
    _, history = fit_world_model(parts, replay, 200)
    first, last = history[0], {k: np.mean([h[k] for h in history[-20:]]) for k in history[0]}
    # one-hot suits in symlog space (0 or ln 2): predicting the mean card costs 4 * 0.75 * 0.25 * ln(2)^2
    mean_card_error = 4 * 0.75 * 0.25 * np.log(2.0) ** 2
    assert last["recon_loss"] < 0.3 * mean_card_error and last["recon_loss"] < 0.1 * first["recon_loss"], (first, last)
    # rewards +-1/48 on the popgym preset's +-1 symlog grid: ~1.36 nats without memory (ln 2 for the sign)
    assert first["reward_loss"] > 5.0 and last["reward_loss"] < 1.6, (first, last)
