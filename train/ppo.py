"""PPO with a sequence-model memory: ``python train/ppo.py env=popgym model=s5 preset=small``."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agents.ppo.config import PPOConfig, from_mapping, validate  # noqa: E402
from experiment import presets  # noqa: E402
from experiment.ppo import run_ppo  # noqa: E402

RUN_KEYS = ("seeds", "seed", "resume", "progress", "deterministic_eval", "logger")


def to_config(cfg: DictConfig) -> PPOConfig:
    """Flatten the Hydra config (``env.*``, ``model.*``, top-level PPO keys) into a ``PPOConfig``."""
    values = OmegaConf.to_container(cfg, resolve=True)
    env, model = values.pop("env"), values.pop("model")
    for key in RUN_KEYS:
        values.pop(key, None)
    # Every env key but its name is an option of the env's constructor (`env.trials`, `env.options.x`).
    env_options = {k: v for k, v in env.items() if k not in ("name", "options")}
    env_options.update(env.get("options") or {})
    values.update(
        env_name=env["name"], env_options=env_options,
        model=model["name"], features=model["features"], num_layers=model["num_layers"],
        model_options=model.get("options") or {},
    )
    return from_mapping(values)


@hydra.main(version_base="1.3", config_path="../configs", config_name="ppo")
def main(cfg: DictConfig) -> None:
    config = validate(to_config(cfg))
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_ppo(config, run_dir, seeds=cfg.seeds, seed=cfg.seed, resume=cfg.resume, progress=cfg.progress,
                      deterministic_eval=cfg.deterministic_eval, logger=cfg.logger)
    print(f"run dir: {run_dir}")
    print(f"final return per seed: {[round(r, 3) for r in summary['final_return']]} "
          f"after {summary['env_steps']:,} env steps ({summary['params']:,} params)")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/preset"), {"paper": "full"})
    main()
