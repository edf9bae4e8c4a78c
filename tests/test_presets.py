"""`preset=auto|small|full` resolution on every entry point (experiment.presets)."""

import os
import subprocess
import sys

import pytest

from ssmrl.experiment import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PPO = os.path.join(ROOT, "configs/ppo/preset")
WORLD_MODEL = os.path.join(ROOT, "configs/world_model/preset")


def test_auto_is_small_on_a_cpu_and_full_on_an_accelerator():
    argv, line = presets.select(["env=popgym"], PPO, {"paper": "full"}, accelerated=False)
    assert argv == ["preset=small", "env=popgym"]
    assert line.startswith("preset=small (auto: no accelerator")
    argv, line = presets.select(["env=popgym", "preset=auto"], PPO, {"paper": "full"}, accelerated=True)
    assert argv == ["env=popgym", "preset=full"]
    assert "accelerator is present" in line


def test_old_names_and_multirun_lists_map_to_files():
    argv, _ = presets.select(["-m", "preset=paper,small", "seed=1"], PPO, {"paper": "full"}, accelerated=False)
    assert argv == ["-m", "preset=full,small", "seed=1"]
    argv, _ = presets.select(["preset=full"], WORLD_MODEL, {"full": "atari100k"}, accelerated=False)
    assert argv == ["preset=atari100k"]
    argv, _ = presets.select(["--cfg", "job"], WORLD_MODEL, {"full": "atari100k"}, accelerated=True)
    assert argv == ["--cfg", "job", "preset=atari100k"]


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(SystemExit, match=r"unknown preset 'big'; valid: \['auto', 'full', 'small', 'paper'\]"):
        presets.select(["preset=big"], PPO, {"paper": "full"}, accelerated=False)


@pytest.mark.parametrize("script", ["ppo", "world_model", "dt", "meta_dt", "collect"])
def test_every_entry_point_resolves_auto_before_composing(script):
    out = subprocess.run([sys.executable, f"train/{script}.py", "--cfg", "job"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0].startswith("preset=small (auto: no accelerator")


def test_old_key_names_are_rewritten_with_a_note():
    from ssmrl.experiment.config import RENAMED, rename

    argv, notes = rename(["-m", "env.game=Pong,Boxing", "model=drama"], RENAMED["world_model"])
    assert argv == ["-m", "env.name=atari/Pong,atari/Boxing", "model=drama"] and len(notes) == 1
    argv, _ = rename(["backbone=s5", "+backbone_options.state_size=4", "data_dir=d"], RENAMED["dt"])
    assert argv == ["model=s5", "+model_options.state_size=4", "dataset_dir=d"]
    argv, _ = rename(["out_dir=d", "ppo.model=gru", "ppo.lr=0.1", "ppo.features=8"], RENAMED["collect"])
    assert argv == ["dataset_dir=d", "model=gru", "lr=0.1", "model.features=8"]
    argv, notes = rename(["env=meta", "env.trials=3", "env.name=meta"], RENAMED["ppo"])
    assert argv == ["env=meta", "env.options.trials=3", "env.name=meta"]
    assert notes == ["note: env.trials= is now env.options.trials= (env.trials=3 -> env.options.trials=3)"]
