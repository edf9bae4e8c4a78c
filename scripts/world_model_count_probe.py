"""What does a trained CountRecall world-model agent know of the count? Readouts on its own replay.

    python scripts/world_model_count_probe.py RUN_DIR [--rows 2000]
    python scripts/world_model_count_probe.py RUN_DIR --refit 2000 --batch-length 128 --batch-size 8
    python scripts/world_model_count_probe.py RUN_DIR --refit 2000 --option dt_max=0.01

RUN_DIR is a `train/world_model.py` run on `CountRecall*` with the per-action reward head
(``reward_input=state_per_action``, the `popgym` preset). The last ``--rows`` replay rows of every env are
observed from a fresh carry (each env's first, partial episode is left out). Action ``a_t`` is paid for
naming how many value cards of the query's type were dealt so far, the one in frame t included; that count
is rebuilt from the frames (``envs.popgym.cards.count_recall_answers``). Two tables, by steps into the episode:

* answers: how often the reward head's best answer (the action whose predicted reward is highest, read
  from the actor's input ``s_t``), the actor's most likely answer and the answer taken are the count, the
  actor's probability of it, and the step-number policy (the most common count at that step here);
* memory: ridge probes from ``s_t = [z_t, h_{t-1}]`` and ``h_t`` to how many cards of each type were dealt,
  fitted on half the envs and scored (RMSE) on the others, beside a probe that knows only the step number.

``--refit N`` reads instead a fresh world model trained alone for N updates on the run's replay without those
last rows (the run's settings, with ``--batch-length``, ``--batch-size`` and ``--option`` changed where given):
an ablation on the agent's own data, without the actor (its columns are left out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import AgentState, Parts, build
from ssmrl.agents.world_model.config import validate
from ssmrl.agents.world_model.probe import fit_world_model, layer_option
from ssmrl.agents.world_model.world_model import state
from ssmrl.envs.popgym.cards import count_recall_answers
from ssmrl.experiment import compile_cache
from ssmrl.experiment.world_model import config_from_run, restore_world_model_run

PHASES = ((0, 4), (5, 9), (10, 19), (20, 29), (30, 39), (40, 1000))


def steps_into_episode(first: np.ndarray) -> np.ndarray:
    """``[T, E]`` steps since the episode's first frame, from ``first [T, E]`` (``first[0]`` set)."""
    step = np.zeros(first.shape, int)
    for t in range(1, len(first)):
        step[t] = np.where(first[t], 0, step[t - 1] + 1)
    return step


def load_run(run_dir: str) -> tuple[Parts, AgentState]:
    """``(parts, agent state)`` of a CountRecall run's newest checkpoint with the per-action reward head."""
    with open(os.path.join(run_dir, "run.json")) as f:
        config = config_from_run(json.load(f))
    if not config.env_name.startswith("CountRecall"):
        raise SystemExit(f"{run_dir} trained on {config.env_name!r}; this probe reads CountRecall* runs")
    if config.reward_input != "state_per_action":
        raise SystemExit(f"{run_dir} has reward_input={config.reward_input!r}; the answers table needs "
                         "'state_per_action' (one predicted reward per action)")
    parts = build(config)
    return parts, restore_world_model_run(run_dir, parts)[1]


def readouts(parts: Parts, params: dict, replay: rb.Replay, rows: int) -> dict:
    """The last ``rows`` rows of ``replay``: frames, actions, rewards and ``first`` ``[T, E]``, with the reward
    head's predicted reward of every action and the actor's log-probabilities ``[T, E, A]``, and the features
    ``s_t``, ``h_t`` ``[T, E, F]``, observed from a fresh carry (``first[0]`` is set); ``0 < rows <= size``."""
    size = int(replay.size)
    tail = {k: np.array(getattr(replay, k)[size - rows:size]) for k in ("obs", "action", "reward", "first")}
    tail["first"][0] = True
    wm = parts.wm

    @jax.jit
    def observe(obs, action, first):
        _, out = wm.apply(params["wm"], wm.initialize_carry(first.shape[1]), obs, action, first,
                          jax.random.split(jax.random.PRNGKey(0), rows), method="observe")
        s = state(out)
        logits = wm.apply(params["wm"], s, method="reward_per_action")
        return {"predicted": wm.reward_value(logits), "s_t": s, "h_t": out["h"],
                "log_pi": jax.nn.log_softmax(parts.actor.apply(params["actor"], s))}

    out = observe(*(jnp.asarray(tail[k]) for k in ("obs", "action", "first")))
    return {**tail, **{k: np.asarray(v) for k, v in out.items()}}


def _after_first_reset(first: np.ndarray) -> np.ndarray:
    """``[T, E]`` True from each env's second episode start on (``first[0]`` was forced)."""
    later = first.copy()
    later[0] = False
    return np.cumsum(later, 0) > 0


def ridge_rmse(x: np.ndarray, y: np.ndarray, fit: np.ndarray, score: np.ndarray) -> float:
    """Ridge regression from ``x [N, F]`` to ``y [N, K]`` fitted on rows ``fit``, RMSE on rows ``score``."""
    x = np.concatenate([x, np.ones((len(x), 1))], 1)
    w = np.linalg.solve(x[fit].T @ x[fit] + 1e-2 * np.eye(x.shape[1]), x[fit].T @ y[fit])
    return float(np.sqrt(np.mean((x[score] @ w - y[score]) ** 2)))


def tables(r: dict, with_actor: bool = True) -> str:
    """The answers and memory tables (Markdown) of ``readouts``; ``with_actor=False`` leaves the actor's
    columns out (a refitted world model's features are not the ones the actor learned to read)."""
    answer, dealt = (np.asarray(x) for x in count_recall_answers(r["obs"], r["first"]))
    step = steps_into_episode(r["first"])
    valid = _after_first_reset(r["first"])
    paid = (r["action"] == answer) == (r["reward"] > 0)
    if not paid[valid].all():
        raise SystemExit(f"the rebuilt count disagrees with the reward sign on {np.mean(~paid[valid]):.1%} of rows")
    mode = np.array([np.bincount(answer[valid & (step == k)]).argmax() if (valid & (step == k)).any() else 0
                     for k in range(step.max() + 1)])
    head = r["predicted"].argmax(-1)
    actor = r["log_pi"].argmax(-1)
    p_answer = np.exp(np.take_along_axis(r["log_pi"], answer[..., None], -1)[..., 0])
    columns = {"rows": lambda m: f"{m.sum()}",
               "reward head's best answer right": lambda m: f"{np.mean(head[m] == answer[m]):.3f}",
               "head's mean abs error": lambda m: f"{np.abs(head[m] - answer[m]).mean():.2f}"}
    if with_actor:
        columns |= {"actor's likeliest answer right": lambda m: f"{np.mean(actor[m] == answer[m]):.3f}",
                    "actor's mean abs error": lambda m: f"{np.abs(actor[m] - answer[m]).mean():.2f}",
                    "actor's probability of the count": lambda m: f"{p_answer[m].mean():.3f}"}
    columns |= {"answer taken right": lambda m: f"{np.mean(r['action'][m] == answer[m]):.3f}",
                "step-number policy right": lambda m: f"{np.mean(mode[step[m]] == answer[m]):.3f}"}
    lines = [f"{valid.sum()} rows of {valid.shape[1]} envs", "",
             "| steps into the episode | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for lo, hi in PHASES:
        m = valid & (step >= lo) & (step <= hi)
        lines.append(f"| {lo}-{min(hi, step.max())} | " + " | ".join(cell(m) for cell in columns.values()) + " |")

    E = valid.shape[1]
    fit, score = valid.copy(), valid.copy()
    fit[:, E // 2:] = False
    score[:, :E // 2] = False
    steps = np.eye(step.max() + 1)[step]  # the step number alone, one-hot: the best it can do per step
    lines += ["", "RMSE of ridge probes to the cards of each type dealt so far (fitted on envs "
              f"0-{E // 2 - 1}, scored on the rest)", "",
              "| steps into the episode | from s_t (actor's input) | from h_t | from the step number only |",
              "|---|---|---|---|"]
    for lo, hi in PHASES:
        m = (step >= lo) & (step <= hi)
        cells = [ridge_rmse(x[m], dealt[m], fit[m], score[m]) for x in (r["s_t"], r["h_t"], steps)]
        lines.append(f"| {lo}-{min(hi, step.max())} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--rows", type=int, default=2000, help="replay rows per env, from the newest back")
    parser.add_argument("--refit", type=int, default=0, metavar="N",
                        help="read a fresh world model trained alone for N updates on the rest of the replay")
    parser.add_argument("--batch-length", type=int, help="with --refit: window length (default: the run's)")
    parser.add_argument("--batch-size", type=int, help="with --refit: windows per update (default: the run's)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", type=layer_option,
                        help="with --refit: an ssm.make option of the drama / s4wm blocks, e.g. dt_max=0.01")
    args = parser.parse_args()
    parts, agent = load_run(args.run_dir)
    params, size = agent.params, int(agent.replay.size)
    if not 0 < args.rows <= size:
        raise SystemExit(f"--rows {args.rows}: the replay holds {size} rows per env")
    if args.refit:
        changes = {"batch_length": args.batch_length, "batch_size": args.batch_size,
                   "layer_options": tuple(args.option) or None}
        parts = build(validate(dataclasses.replace(parts.config, **{k: v for k, v in changes.items() if v})))
        if size - args.rows < parts.config.batch_length:
            raise SystemExit(f"--rows {args.rows} leaves {size - args.rows} rows to refit on, fewer than a "
                             f"{parts.config.batch_length}-step window")
        older_rows = agent.replay.replace(size=agent.replay.size - args.rows)  # the probed rows held out
        params = {**params, "wm": fit_world_model(parts, older_rows, args.refit)[0]}
    elif args.batch_length or args.batch_size or args.option:
        raise SystemExit("--batch-length, --batch-size and --option change a --refit world model; add --refit N")
    print(f"{args.run_dir}:", tables(readouts(parts, params, agent.replay, args.rows), with_actor=not args.refit))


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
