"""One run of every benchmark that needs an accelerator, within a wall-time budget (default 420 s) on one H100/H200.

    python bench/gpu.py                         # on the GPU machine: writes runs/gpu_bench/<date>/gpu.{json,md}
    python bench/gpu.py --tiny                  # the same code path at toy sizes, on a CPU, in a few minutes
    SSMRL_BENCH_TINY=1 python bench/gpu.py      # the same as --tiny

Sections, in this order (each writes its rows into the JSON as soon as it ends; a section that would
start after its share of ``--budget-s`` is skipped and says so, so the JSON is always written; on one H200 all the
sections together take ~11 minutes, so a full table takes two calls, the second with ``--sections`` and
``--ppo-models``):

1. ``scan``: bench/scan.py, forward+backward of one layer in parallel and in step mode, L up to 4096;
   for the layers with a ``scan_method`` option, the parallel mode both ways (the backend's ``auto``
   choice and the alternative), the measurement ``ssm.scan.resolve_method`` is chosen by; the step mode,
   which no ``scan_method`` changes, once.
2. ``ppo``: bench/ppo_popgym.py at the paper configuration (64 envs x 1024 steps, 30 epochs x 8
   minibatches, paper-sized models) for s5 / gru / mamba / mamba2 with 1 and 8 vmapped seeds:
   env-steps/s, loop-aware FLOPs, fraction of the matmul peak, 8-seed / 1-seed time, S5 / GRU speed; with
   ``--popjaxrl DIR`` (a checkout of popjaxrl, bench/popjaxrl_baseline.py) popjaxrl's S5 and GRU at the same
   sizes too, in this process, and our speed over theirs.
3. ``world_model``: bench/world_model.py at Drama size with the full batch: one world-model update on 16 x 64
   windows (the agent's ``batch_size x batch_length``) in each of ``--precisions`` (bf16: the dense layers'
   matmuls), one imagination rollout from 1024 starts for 16 steps, and the original ConvTranspose decoder's
   update (f32; the ratio is its time over ours).
4. ``atari``: a short timed Drama run on Atari Pong at the agent's Atari100k configuration (one env, one update
   per agent step): prefill, then chunks of updates; seconds per agent step after compilation and the wall time
   of one Atari100k game (100k agent steps) they imply.
5. ``train``: a short PPO-S5 run at the paper configuration on RepeatPreviousEasy (training returns).

And, only when named in ``--sections``:

6. ``agent``: bench/world_model.py ``--agent``: one agent step of a training run, whole and piece by piece (collect,
   world-model update, imagination starts, imagination, actor-critic update), for the Atari100k agent on Pong (what
   the ``atari`` section's time per agent step is made of) and for the ``small`` agent on Breakout-MinAtar at the
   Atari100k train ratio with 1 and 4 agents vmapped in one program (whether seeds share a GPU for less than their
   sum).

Nothing here assumes a CPU: float32 only, default device placement, no host callbacks (but the Atari emulators of
the ``atari`` and ``agent`` sections, which run on the host by nature).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import time
import traceback

import jax
import numpy as np
import ppo_popgym  # sibling script modules: bench/ is the script's path entry
import scan as scan_bench
import world_model as wm_bench
from hlo_flops import matmul_peak
from popjaxrl_baseline import MODELS as POPJAXRL_MODELS
from popjaxrl_baseline import bench_popjaxrl, check_checkout
from popjaxrl_baseline import load as load_popjaxrl

from ssmrl.agents.params import count_params
from ssmrl.agents.ppo.train import build, make_chunk
from ssmrl.agents.world_model import agent as wm_agent
from ssmrl.agents.world_model.config import WorldModelConfig, validate
from ssmrl.ssm.precision import PRECISIONS

TINY_WORLD_MODEL = dict(hidden=32, num_layers=1, latent_groups=4, latent_classes=4, channels=(4, 4, 8, 8, 8), kernel=4,
                        mlp_hidden=32, ac_hidden=32, ac_layers=1)
# The agent's Atari100k train ratio (one update of 16 x 64 windows and 1024 imagination starts per env step)
DRAMA_RATIO = dict(train_every=1, batch_size=16, batch_length=64, imag_batch=1024)
TINY_AGENT = dict(TINY_WORLD_MODEL, batch_size=2, batch_length=8, imag_batch=8, imag_context=4, horizon=4, prefill=16,
                  total_steps=64)
SIZES = {
    "full": dict(
        scan=dict(models=["s5", "mamba", "mamba2", "gru", "s4d"], lengths=[64, 1024, 4096], batch=16,
                  features=128, p=64, repeats=3, alternative={"s5": "sequential", "mamba": "sequential",
                                                              "mamba2": "associative"}),
        ppo=dict(models=["s5", "gru", "mamba", "mamba2"], seeds=[1, 8], updates=1, repeats=1,
                 sizes=dict(num_envs=64, num_steps=1024, epochs=30, minibatches=8, features=256)),
        world_model=dict(model="drama", batch=16, length=64, starts=1024, horizon=16, repeats=3, overrides={}),
        atari=dict(model="drama", game="Pong", updates_per_chunk=100, chunks=4, overrides={}),
        train=dict(model="s5", updates=16, updates_per_chunk=4,
                   sizes=dict(num_envs=64, num_steps=1024, epochs=30, minibatches=8, features=256)),
        agent=dict(model="drama", repeats=5, jobs=[
            dict(preset="atari100k", env="atari/Pong", seeds=[1], overrides={}),
            dict(preset="small", env="Breakout-MinAtar", seeds=[1, 4], overrides=DRAMA_RATIO)]),
    ),
    "tiny": dict(
        scan=dict(models=["s5", "gru"], lengths=[16, 64], batch=4, features=16, p=8, repeats=1,
                  alternative={"s5": "associative"}),
        ppo=dict(models=["s5", "gru", "mamba", "mamba2"], seeds=[1, 2], updates=1, repeats=1,
                 sizes=dict(num_envs=8, num_steps=16, epochs=1, minibatches=2, features=16, num_layers=1)),
        world_model=dict(model="drama", batch=2, length=8, starts=8, horizon=4, repeats=1, overrides=TINY_WORLD_MODEL),
        atari=dict(model="drama", game="Pong", updates_per_chunk=2, chunks=2,
                   overrides=dict(TINY_WORLD_MODEL, batch_size=2, batch_length=8, imag_batch=8, imag_context=4,
                                  horizon=4, prefill=16)),
        train=dict(model="s5", updates=4, updates_per_chunk=2,
                   sizes=dict(num_envs=8, num_steps=16, epochs=1, minibatches=2, features=16, num_layers=1)),
        agent=dict(model="drama", repeats=1, jobs=[
            dict(preset="atari100k", env="atari/Pong", seeds=[1], overrides=TINY_AGENT),
            dict(preset="small", env="Breakout-MinAtar", seeds=[1, 2], overrides=TINY_AGENT)]),
    ),
}
SECTIONS = ("scan", "ppo", "world_model", "atari", "train")
EXTRA_SECTIONS = ("agent",)  # run only when named in --sections
# Share of --budget-s by the end of each section: later sections are skipped rather than overrunning.
BUDGET_SHARE = {"scan": 0.12, "ppo": 0.55, "world_model": 0.72, "atari": 0.88, "train": 1.0, "agent": 1.0}


def run_scan(s: dict, deadline: float) -> list[dict]:
    """Every model at one length before any at the next: on one H200 the section's share ran out inside the first
    models' step mode at L = 4096 (hundreds of ms a call), leaving later models with no row at all."""
    rows = []
    for length in s["lengths"]:
        for name in s["models"]:
            variants = [{}] + ([{"scan_method": s["alternative"][name]}] if name in s["alternative"] else [])
            for options in variants:
                if time.perf_counter() > deadline:
                    rows.append({"model": name, "L": length, **options, "skipped": "budget"})
                    continue
                modes = ("parallel",) if options else ("parallel", "step")  # the auto row has the step mode
                row = scan_bench.bench_layer(name, length, s["batch"], s["features"], s["p"], s["repeats"], modes,
                                             **options)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def run_ppo(s: dict, deadline: float, peak: float, precisions: list[str], popjaxrl: dict | None = None) -> list[dict]:
    """``popjaxrl``: popjaxrl_baseline.load's result, to time its S5 / GRU (paper-sized models) at the same env,
    step and epoch counts before our f32 one-seed row."""
    rows = []
    for model in s["models"]:
        sizes = dict(s["sizes"])
        baseline = None
        if popjaxrl is not None and model in POPJAXRL_MODELS and time.perf_counter() < deadline:
            baseline = bench_popjaxrl(popjaxrl, model, updates=s["updates"], repeats=s["repeats"],
                                      **{k: sizes[k] for k in ("num_envs", "num_steps", "epochs", "minibatches")})
            print(json.dumps({"popjaxrl": model, **baseline}), flush=True)
        if "num_layers" in sizes:  # tiny: small state sizes too
            sizes["model_options"] = (("state_size", 8),) if model in ("s5", "mamba", "mamba2") else ()
        for precision in precisions:
            one = None
            for seeds in s["seeds"]:
                if time.perf_counter() > deadline:
                    rows.append({"model": model, "precision": precision, "seeds": seeds, "skipped": "budget"})
                    continue
                config = ppo_popgym.bench_config(model, "RepeatPreviousEasy", s["updates"], precision, **sizes)
                row = dict(model=model, precision=precision, seeds=seeds,
                           **ppo_popgym.bench_agent(config, seeds, s["repeats"]))
                row["peak_fraction"] = row["gflops"] / peak
                if seeds == 1:
                    one = row
                    if baseline is not None and precision == "f32":
                        row.update(popjaxrl_steps_per_s=baseline["steps_per_s"],
                                   popjaxrl_compile_s=baseline["compile_s"])
                        if "num_layers" not in s["sizes"]:  # tiny shrinks our models, not popjaxrl's: no ratio
                            row["x_popjaxrl"] = row["steps_per_s"] / baseline["steps_per_s"]
                elif one is not None:
                    row["time_vs_1_seed"] = row["seconds"] / one["seconds"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def run_world_model(s: dict, deadline: float, peak: float, precisions: list[str]) -> list[dict]:
    """The update in each precision, imagination (f32), then the ConvTranspose decoder's update (f32)."""
    rows = []
    size = dict(batch=s["batch"], length=s["length"])
    jobs = [("update", "subpixel/matmul", p) for p in precisions]
    jobs += [("imagine", "subpixel/matmul", "f32"), ("update", "conv_transpose/xla", "f32")]
    ours = None
    for kind, networks, precision in jobs:
        head = dict(model=s["model"], kind=kind, networks=networks, precision=precision)
        if time.perf_counter() > deadline:
            rows.append({**head, "skipped": "budget"})
            continue
        if kind == "update":
            row = {**head, **size, **wm_bench.bench_update(s["model"], networks, s["batch"], s["length"], s["repeats"],
                                                          **s["overrides"], precision=precision)}
            if networks == "subpixel/matmul" and precision == "f32":
                ours = row
            elif ours is not None and networks == "conv_transpose/xla":
                row["x_ours"] = row["s"] / ours["s"]
        else:
            row = {**head, "starts": s["starts"], "horizon": s["horizon"],
                   **wm_bench.bench_imagine(s["model"], s["starts"], s["horizon"], s["repeats"], precision,
                                            **s["overrides"])}
        row["peak_fraction"] = row["gflops"] / peak
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def run_atari(s: dict, deadline: float) -> list[dict]:
    """A short world-model run on Atari at the agent's Atari100k configuration (``WorldModelConfig`` defaults: one
    env, one update per agent step, Drama size): prefill with compilation, then ``chunks`` chunks of updates, the
    first with compilation. The implied Atari100k wall time is the prefill as measured plus every later agent step of
    the agent's default run (``WorldModelConfig.total_steps``, Atari100k's budget) at the median chunk's rate. ALE
    runs on the host CPU; the env's XLA backend first, its callback backend if that fails (the error is kept in the
    row)."""
    head = {"model": s["model"], "game": s["game"]}
    if time.perf_counter() > deadline:
        return [{**head, "skipped": "budget"}]
    steps = s["overrides"].get("prefill", WorldModelConfig.prefill) + s["chunks"] * s["updates_per_chunk"]
    config = wm_bench.agent_config("atari100k", f"atari/{s['game']}", s["model"],
                                   updates_per_chunk=s["updates_per_chunk"], total_steps=steps, **s["overrides"])
    errors = {}
    for backend in ("xla", "callback"):
        try:
            return [{**_time_atari(validate(dataclasses.replace(config, env_options=(("backend", backend),))),
                                   s["chunks"], deadline, backend), "errors": errors}]
        except Exception:
            errors[backend] = traceback.format_exc()
            print(errors[backend], flush=True)
    return [{**head, "errors": errors}]


def _time_atari(config: WorldModelConfig, chunks: int, deadline: float, backend: str) -> dict:
    parts = wm_agent.build(config)
    t0 = time.perf_counter()
    state = wm_agent.init(parts, jax.random.PRNGKey(0))
    state, _ = jax.block_until_ready(jax.jit(wm_agent.make_prefill(parts))(state))
    prefill_s = time.perf_counter() - t0
    chunk = wm_agent.make_chunk(parts)
    times, returns = [], []
    for i in range(chunks):
        if i > 1 and time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        state, metrics = chunk(state)
        metrics = jax.device_get(metrics)
        times.append(time.perf_counter() - t)
        returns += [float(x) for x in np.asarray(metrics["episode_return"]) if np.isfinite(x)]
    steady = float(np.median(times[1:])) / config.updates_per_chunk  # at least two chunks ran
    prefill = config.prefill_chunk_steps
    row = dict(model=config.model, game=config.env_name, backend=backend, prefill_steps=prefill,
               prefill_s_with_compile=prefill_s, chunk_s=times, updates_per_chunk=config.updates_per_chunk,
               s_per_agent_step=steady, agent_steps_per_s=1 / steady,
               atari100k_hours=(prefill_s + (WorldModelConfig.total_steps - prefill) * steady) / 3600,
               episode_returns=returns, params_wm=count_params(state.params["wm"]))
    print(json.dumps(row), flush=True)
    return row


def run_agent(s: dict, deadline: float, peak: float) -> list[dict]:
    """bench/world_model.py's ``--agent`` rows: a training run's agent step, whole and piece by piece, and several
    agents vmapped in one program (``seeds``) against one."""
    rows = []
    for job in s["jobs"]:
        head = {"model": s["model"], "preset": job["preset"], "env": job["env"]}
        if time.perf_counter() > deadline:
            rows.append({**head, "skipped": "budget"})
            continue
        config = wm_bench.agent_config(job["preset"], job["env"], s["model"], **job["overrides"])
        row = {**head, **wm_bench.bench_agent(config, job["seeds"], s["repeats"])}
        row["peak_fraction"] = row["gflops"] / peak
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def run_train(s: dict, deadline: float) -> list[dict]:
    """A short PPO run from scratch: the training return after every update (no evaluation episodes)."""
    if time.perf_counter() > deadline:
        return [{"model": s["model"], "skipped": "budget"}]
    sizes = dict(s["sizes"])
    if "num_layers" in sizes:
        sizes["model_options"] = (("state_size", 8),)
    config = ppo_popgym.bench_config(s["model"], "RepeatPreviousEasy", s["updates_per_chunk"], **sizes)
    parts = build(config)
    t0 = time.perf_counter()
    state = jax.jit(parts.init)(jax.random.PRNGKey(0))
    chunk = jax.jit(make_chunk(parts))
    returns, chunks = [], s["updates"] // s["updates_per_chunk"]
    for i in range(chunks):
        if i > 0 and time.perf_counter() > deadline:
            break
        state, metrics = chunk(state)
        returns += np.asarray(metrics["episode_return"]).tolist()
    seconds = time.perf_counter() - t0
    steps = len(returns) * config.steps_per_update
    row = dict(model=s["model"], env="RepeatPreviousEasy", updates=len(returns), env_steps=steps, wall_s=seconds,
               steps_per_s_with_compile=steps / seconds, episode_return=returns,
               final_return=float(np.nanmean(returns[-2:])) if returns else float("nan"))
    print(json.dumps(row), flush=True)
    return [row]


def markdown(result: dict) -> str:
    lines = [f"# bench/gpu.py — {result['device']} ({result['backend']}), {result['date']}", "",
             f"mode {result['mode']}; matmul peak 2048x2048: f32 {result['matmul_peak_gflops']:.0f} GFLOP/s, "
             f"bf16->f32 {result['matmul_peak_bf16_gflops']:.0f} GFLOP/s; wall {result['wall_s']:.0f} s", ""]
    scan_rows = result.get("scan", [])
    if scan_rows:
        lines += ["## Sequence layers (bench/scan.py), forward+backward", "",
                  "| model | L | scan_method | parallel ms | step ms | step/parallel | parallel MB |", "|---" * 7 + "|"]
        for r in scan_rows:
            if "skipped" in r:
                lines.append(f"| {r['model']} | {r['L']} | {r.get('scan_method', 'auto')} | skipped ({r['skipped']}) "
                             "| | | |")
            else:
                step = f"{r['step_ms']:.1f} | {r['ratio']:.2f}" if "step_ms" in r else "as auto's | "
                lines.append(f"| {r['model']} | {r['L']} | {r.get('scan_method', 'auto')} | {r['parallel_ms']:.1f} | "
                             f"{step} | {r['parallel_mb']:.0f} |")
        lines.append("")
    ppo_rows = result.get("ppo", [])
    if ppo_rows:
        lines += ["## PPO throughput (bench/ppo_popgym.py sizes: " + json.dumps(result["sizes"]["ppo"]["sizes"]) + ")",
                  "", "| model | precision | seeds | env-steps/s | compile s | GFLOP/update | GFLOP/s | % peak | "
                  "time vs 1 seed | x popjaxrl (its env-steps/s, compile s) |", "|---" * 10 + "|"]
        for r in ppo_rows:
            if "skipped" in r:
                lines.append(f"| {r['model']} | {r['precision']} | {r['seeds']} | skipped ({r['skipped']}) "
                             "| | | | | | |")
            else:
                ratio = f"{r['time_vs_1_seed']:.2f}x" if "time_vs_1_seed" in r else ""
                versus = ""
                if "popjaxrl_steps_per_s" in r:
                    versus = (f"{r['x_popjaxrl']:.2f}x" if "x_popjaxrl" in r else "(its models are paper-sized)")
                    versus += f" ({r['popjaxrl_steps_per_s']:,.0f}, {r['popjaxrl_compile_s']:.0f})"
                lines.append(f"| {r['model']} | {r['precision']} | {r['seeds']} | {r['steps_per_s']:,.0f} | "
                             f"{r['compile_s']:.1f} | {r['gflop_per_update']:.3g} | {r['gflops']:.3g} | "
                             f"{100 * r['peak_fraction']:.1f} | {ratio} | {versus} |")
        one = {r["model"]: r for r in ppo_rows if r.get("seeds") == 1 and "skipped" not in r}
        if "s5" in one and "gru" in one:
            speed = one["s5"]["steps_per_s"] / one["gru"]["steps_per_s"]
            lines += ["", f"S5 / GRU speed at this configuration: {speed:.2f}x "
                      "(popjaxrl reports S5 over five times faster than RNNs on a GPU)"]
        lines.append("")
    if result.get("world_model"):
        lines += ["## World model at Drama size (bench/world_model.py)", "",
                  "| what | networks | precision | size | ms | compile s | GFLOP | GFLOP/s | % peak | MB | "
                  "time / ours |", "|---" * 11 + "|"]
    for r in result.get("world_model", []):
        head = f"| {r['kind']} | {r['networks']} | {r['precision']} |"
        if "skipped" in r:
            lines.append(f"{head} skipped ({r['skipped']}) | | | | | | | |")
            continue
        size = (f"{r['batch']} x {r['length']} windows" if r["kind"] == "update"
                else f"{r['starts']} starts x {r['horizon']} steps")
        ratio = f"{r['x_ours']:.1f}x" if "x_ours" in r else ""
        lines.append(f"{head} {size} | {r['s'] * 1e3:.1f} | {r['compile_s']:.1f} | {r['gflop']:.1f} | "
                     f"{r['gflops']:.0f} | {100 * r['peak_fraction']:.1f} | {r['mb']:.0f} | {ratio} |")
    if result.get("world_model"):
        lines.append("")
    for r in result.get("atari", []):
        lines += ["## Short world-model run on Atari (the agent's Atari100k configuration)", ""]
        if "skipped" in r:
            lines.append(f"{r['model']} on {r['game']}: skipped ({r['skipped']})")
        elif "s_per_agent_step" in r:
            lines.append(f"{r['model']} on {r['game']} (ALE backend {r['backend']}, {r['params_wm']:,} world-model "
                         f"params): prefill of {r['prefill_steps']:,} steps {r['prefill_s_with_compile']:.0f} s with "
                         f"compilation; {r['updates_per_chunk']} updates per chunk in "
                         + ", ".join(f"{t:.1f}" for t in r["chunk_s"]) + " s (the first compiles); "
                         f"{1e3 * r['s_per_agent_step']:.1f} ms per agent step ({r['agent_steps_per_s']:.1f}/s): "
                         f"**one Atari100k game in {r['atari100k_hours']:.2f} h**")
        for backend, error in r.get("errors", {}).items():
            lines += ["", f"ALE backend {backend} failed:", "", "```", error.strip()[-1500:], "```"]
        lines.append("")
    for r in result.get("train", []):
        lines += ["## Short PPO run (RepeatPreviousEasy)", ""]
        if "skipped" in r:
            lines.append(f"{r['model']}: skipped ({r['skipped']})")
        else:
            lines.append(f"{r['model']}: {r['env_steps']:,} env steps in {r['wall_s']:.0f} s with compilation "
                         f"({r['steps_per_s_with_compile']:,.0f} env-steps/s); training return over the last two "
                         f"updates {r['final_return']:.3f}; per update: "
                         + ", ".join(f"{x:.2f}" for x in r["episode_return"]))
        lines.append("")
    if result.get("agent"):
        lines += ["## A training run's agent step, whole and piece by piece (bench/world_model.py --agent)", "",
                  "| preset | env | ms | ms per env step | % peak | " + " | ".join(wm_bench.AGENT_PIECES)
                  + " | seeds vmapped: x one seed's time |", "|---" * (6 + len(wm_bench.AGENT_PIECES)) + "|"]
    for r in result.get("agent", []):
        if "skipped" in r:
            lines.append(f"| {r['preset']} | {r['env']} | skipped ({r['skipped']}) |" + " |" * (3 + len(
                wm_bench.AGENT_PIECES)))
            continue
        many = ", ".join(f"{k.split('_')[1]}: {v['time_vs_1_seed']:.2f}x" for k, v in r.items()
                         if k.startswith("seeds_"))
        lines.append(f"| {r['preset']} | {r['env']} | {r['ms']:.1f} | {r['ms_per_env_step']:.2f} | "
                     f"{100 * r['peak_fraction']:.1f} | " + " | ".join(f"{r[p + '_ms']:.1f}" for p in
                                                                       wm_bench.AGENT_PIECES) + f" | {many} |")
    if result.get("agent"):
        lines.append("")
    for name, error in result.get("errors", {}).items():
        lines += [f"## {name}: failed", "", "```", error.strip()[-2000:], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("SSMRL_BENCH_TINY", "") not in ("", "0"),
                        help="toy sizes (also SSMRL_BENCH_TINY=1): checks the whole path on a CPU in minutes")
    parser.add_argument("--out", default=None, help="directory for gpu.json and gpu.md (default runs/gpu_bench/<date>)")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS + EXTRA_SECTIONS,
                        help="default: all but " + ", ".join(EXTRA_SECTIONS))
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-time budget: a section starting past its share is skipped (default 420 s; "
                             "--tiny: 1800 s, as a CPU compiles slowly)")
    parser.add_argument("--precisions", nargs="+", default=["f32"], choices=PRECISIONS,
                        help="PPO and world-model precisions")
    parser.add_argument("--ppo-models", nargs="+", default=None, help="replace the PPO model list")
    parser.add_argument("--scan-models", nargs="+", default=None, help="replace the scan-benchmark model list")
    parser.add_argument("--popjaxrl", default=None, metavar="DIR",
                        help="a checkout of popjaxrl: time its S5 / GRU beside ours in the ppo section")
    args = parser.parse_args(argv)
    try:
        popjaxrl = load_popjaxrl(check_checkout(args.popjaxrl)) if args.popjaxrl is not None else None
    except ValueError as e:
        parser.error(str(e))
    mode = "tiny" if args.tiny else "full"
    budget = args.budget_s or (1800.0 if args.tiny else 420.0)
    sizes = copy.deepcopy(SIZES[mode])
    if args.ppo_models:
        sizes["ppo"]["models"] = args.ppo_models
    if args.scan_models:
        sizes["scan"]["models"] = args.scan_models
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    out = args.out or os.path.join("runs", "gpu_bench", date)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    result = dict(mode=mode, date=date, backend=jax.default_backend(), device=jax.devices()[0].device_kind,
                  devices=len(jax.devices()), jax=jax.__version__, sizes=sizes, sections=args.sections,
                  precisions=args.precisions, matmul_peak_gflops=matmul_peak(), matmul_peak_bf16_gflops=matmul_peak(
                      dtype="bf16"), errors={})
    print(f"bench/gpu.py mode={mode} backend={result['backend']} device={result['device']} "
          f"peak f32 {result['matmul_peak_gflops']:.0f} GFLOP/s -> {out}", flush=True)

    def save():
        result["wall_s"] = time.perf_counter() - start
        with open(os.path.join(out, "gpu.json"), "w") as f:
            json.dump(result, f, indent=2, default=str)
        with open(os.path.join(out, "gpu.md"), "w") as f:
            f.write(markdown(result))

    peak = result["matmul_peak_gflops"]
    for name in args.sections:
        deadline = start + BUDGET_SHARE[name] * budget
        print(f"== {name} (budget until {deadline - start:.0f} s; now {time.perf_counter() - start:.0f} s)", flush=True)
        try:
            if name == "scan":
                result[name] = run_scan(sizes["scan"], deadline)
            elif name == "ppo":
                result[name] = run_ppo(sizes["ppo"], deadline, peak, args.precisions, popjaxrl)
            elif name == "world_model":
                result[name] = run_world_model(sizes["world_model"], deadline, peak, args.precisions)
            elif name == "atari":
                result[name] = run_atari(sizes["atari"], deadline)
            elif name == "agent":
                result[name] = run_agent(sizes["agent"], deadline, peak)
            else:
                result[name] = run_train(sizes["train"], deadline)
        except Exception:  # keep the other sections' numbers; the JSON says what failed
            result["errors"][name] = traceback.format_exc()
            print(result["errors"][name], flush=True)
        save()
    print(markdown(result), flush=True)
    print(f"wrote {out}/gpu.json and {out}/gpu.md in {result['wall_s']:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
