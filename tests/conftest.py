"""Test-wide JAX settings: a persistent compile cache outside the repo and fast, unoptimised XLA."""

import os

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/ssmrl-jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture
def stored_without():
    """``stored_without(run_dir, key)``: rewrite ``run_dir``'s ``run.json`` as a version that lacked the setting ``key``
    (dotted, within the stored config) would have written it, so that a test can resume a run from before a setting
    existed."""

    from ssmrl.experiment.run_dir import RUN_FILE, read_json, write_json

    def forget(run_dir, key: str) -> None:
        path = os.path.join(run_dir, RUN_FILE)
        run = read_json(path)
        *parents, last = key.split(".")
        node = run["config"]
        for part in parents:
            node = node[part]
        del node[last]
        write_json(path, run)

    return forget
