"""The on-disk offline-RL dataset format (experiment/datasets.py): round trip and card contents."""

import json
import os

import numpy as np
import pytest

from ssmrl.envs.tasks import PointRobot, index_params, task_split
from ssmrl.experiment.datasets import (
    CARD_FILE,
    FORMAT_VERSION,
    mix_episodes,
    params_from_arrays,
    read_dataset,
    write_dataset,
)


def _episodes(rng, n=3, t=5, obs=2, act=2):
    dones = np.zeros((n, t), bool)
    dones[:, -1] = True
    return {"observations": rng.normal(size=(n, t, obs)).astype(np.float32),
            "actions": rng.uniform(-0.1, 0.1, size=(n, t, act)).astype(np.float32),
            "rewards": -rng.uniform(size=(n, t)).astype(np.float32),
            "dones": dones,
            "next_observations": rng.normal(size=(n, t, obs)).astype(np.float32)}


def test_round_trip_and_card(tmp_path):
    rng = np.random.default_rng(0)
    train, _ = task_split("tasks/point_robot", seed=3)
    eps = [_episodes(rng) for _ in range(2)]
    params = [index_params(train, i) for i in (4, 7)]
    card = write_dataset(str(tmp_path), eps, env="tasks/point_robot", task_params=params, split="train",
                         split_seed=3, task_indices=[4, 7], policy={"description": "test policy", "updates": 2},
                         quality="expert", seed=11)
    assert sorted(os.listdir(tmp_path)) == [CARD_FILE, "task_000.npz", "task_001.npz"]
    back, card2 = read_dataset(str(tmp_path))
    assert card2 == card == json.load(open(tmp_path / CARD_FILE))
    for a, b, p in zip(eps, back, params):
        for k, v in a.items():
            np.testing.assert_array_equal(v, b[k])
            assert b[k].dtype == v.dtype
        np.testing.assert_array_equal(b["params"]["goal"], np.asarray(p.goal))
        rebuilt = params_from_arrays(PointRobot().default_params, b["params"])
        np.testing.assert_array_equal(np.asarray(rebuilt.goal), np.asarray(p.goal))
    assert card["format_version"] == FORMAT_VERSION
    assert card["env"] == "tasks/point_robot" and card["split"] == "train" and card["split_seed"] == 3
    assert card["task_indices"] == [4, 7] and card["quality"] == "expert" and card["seed"] == 11
    assert card["policy"]["description"] == "test policy"
    assert (card["num_tasks"], card["episodes_per_task"], card["horizon"], card["obs_dim"], card["act_dim"]) == \
        (2, 3, 5, 2, 2)
    for task, ep in zip(card["tasks"], eps):
        returns = ep["rewards"].sum(1)
        assert task["return_mean"] == pytest.approx(returns.mean(), rel=1e-5)
        assert task["return_max"] == pytest.approx(returns.max(), rel=1e-5)
        assert task["num_episodes"] == 3
    all_returns = np.concatenate([ep["rewards"].sum(1) for ep in eps])
    assert card["return_stats"]["return_std"] == pytest.approx(all_returns.std(), rel=1e-4)


def test_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    ep = _episodes(rng)
    kw = dict(env="tasks/point_robot", task_params=[{"goal": np.zeros(2)}], split="train", split_seed=0,
              task_indices=[0], policy={"description": "x"}, quality="medium", seed=0)
    with pytest.raises(ValueError, match="missing"):
        write_dataset(str(tmp_path), [{k: v for k, v in ep.items() if k != "dones"}], **kw)
    with pytest.raises(ValueError, match="actions"):
        write_dataset(str(tmp_path), [dict(ep, actions=ep["actions"][:, :-1])], **kw)
    with pytest.raises(FileNotFoundError):
        read_dataset(str(tmp_path / "nothing"))
    good = tmp_path / "good"
    card = write_dataset(str(good), [ep], **kw)
    (good / card["tasks"][0]["file"]).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=rf"{good / card['tasks'][0]['file']} is corrupt"):
        read_dataset(str(good))
    (good / "card.json").write_text("{")
    with pytest.raises(ValueError, match=rf"{good / 'card.json'} is corrupt"):
        read_dataset(str(good))


def test_mix_episodes():
    rng = np.random.default_rng(0)
    a, b = _episodes(rng, n=10), _episodes(rng, n=10)
    a["rewards"][:] = -1.0
    b["rewards"][:] = -2.0
    m = mix_episodes(a, b, 0.7, np.random.default_rng(1))
    assert m["rewards"].shape == (10, 5)
    assert (m["rewards"][:, 0] == -1.0).sum() == 7 and (m["rewards"][:, 0] == -2.0).sum() == 3
