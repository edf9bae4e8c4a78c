"""PPO with any registered memory model: config, network, rollout and update."""
