"""The entry points' persistent compile cache (experiment/compile_cache.py): each case in a fresh process, since
JAX's cache settings are per process and this test session has its own (conftest)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What an entry point does before Hydra, then one program compiled (or loaded) and run.
SCRIPT = """
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring
from ssmrl.experiment.config import prepare
hits = []
monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
sys.argv = ["ppo.py", "env=popgym"]
prepare("ppo", "usage")
y = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.arange(64.0).reshape(8, 8) / 64)
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "hits": len(hits), "y": float(y)}))
"""


def _run(tmp_path, prelude: str = "", **env) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    base.update({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                 "JAX_PLATFORMS": "cpu", **env})
    out = subprocess.run([sys.executable, "-c", prelude + SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=base)
    assert out.returncode == 0, out.stderr
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_a_second_process_loads_the_program_instead_of_compiling_it(tmp_path):
    from ssmrl.experiment import compile_cache

    first, second = _run(tmp_path), _run(tmp_path)
    folder = first["dir"]
    assert folder.startswith(str(tmp_path / "xdg" / "ssmrl" / "jax-")) and folder.endswith(compile_cache.machine_key())
    assert any(name.endswith("-cache") for name in os.listdir(folder))
    assert first["hits"] == 0 and second["hits"] > 0
    assert second["y"] == first["y"]


def test_jax_own_settings_win(tmp_path):
    assert _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"))["dir"] == str(tmp_path / "mine")
    assert any(name.endswith("-cache") for name in os.listdir(tmp_path / "mine"))
    off = _run(tmp_path, JAX_ENABLE_COMPILATION_CACHE="false")
    assert off["dir"] is None and not (tmp_path / "xdg" / "ssmrl").exists()


def test_no_folder_to_write_or_no_filelock_leaves_the_cache_off_with_one_note(tmp_path):
    (tmp_path / "a_file").write_text("")
    for out in (_run(tmp_path, XDG_CACHE_HOME=str(tmp_path / "a_file")),
                _run(tmp_path, prelude="import sys; sys.modules['filelock'] = None\n")):
        assert out["dir"] is None and out["stderr"].count("note: no compile cache") == 1
        assert "persistent compilation cache" not in out["stderr"]
