"""Around the agents: chunked runs with progress, TensorBoard logs, orbax checkpoints and plots."""
