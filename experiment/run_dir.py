"""One run directory for every trainer: what it holds, who may write it, and how it is reused.

```
<run dir>/run.json       {"kind": ..., "version": ..., "config": {...}}: enough to rebuild, evaluate or resume
<run dir>/run.lock       the pid of the process writing the directory (absent when nobody is)
<run dir>/checkpoints/   orbax (experiment.checkpoint); every save's result checked
<run dir>/summary.json   final figures, wall time summed over resumes, why the run stopped
```
A used directory is never silently reused: without ``resume`` it is refused; with ``resume`` the stored
config is compared with the new one before anything is written, and only keys that cannot change the
results (``RESULT_FREE``: progress display, logging, the resume flag itself) may differ; a setting added since the
run was stored is the same run while left at its default (``defaults``). A trainer may
also name ``extendable`` keys (a world model's ``total_steps``) that may grow on resume: the run goes on
past its old end, ``run.json`` lists each extension and the old ``summary.json`` is kept beside the new
one as ``summary.<key>=<old value>.json``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import ssmrl

KINDS = ("ppo", "world_model", "dt", "meta_dt", "collect")
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = "run.lock"
# Config keys (the last part of a dotted name) that may change between a run and its resume.
RESULT_FREE = ("progress", "resume", "logger")
# What Hydra writes into hydra.run.dir before our code runs: not a sign of an earlier run.
HYDRA_ENTRIES = (".hydra", "hydra")


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked: already used, locked, changed config, corrupt file."""


def read_json(path: str) -> Any:
    """The JSON in ``path``; a missing or corrupt file raises ``RunDirError`` naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path} is corrupt (not valid JSON: {error}); restore it or start a new run "
                          "directory") from None


def write_json(path: str, value: Any) -> None:
    """Write ``value`` to ``path`` atomically: a crash or Ctrl-C leaves the old file or the new one."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, default=str)
    os.replace(tmp, path)


def read_run(run_dir: str) -> dict:
    """``run.json`` of ``run_dir``, checked: ``{"kind", "version", "config"}``."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise RunDirError(f"{path} not found: not a run directory written by train/ppo.py, train/world_model.py, "
                          "train/dt.py, train/meta_dt.py or train/collect.py")
    run = read_json(path)
    if not isinstance(run, dict) or run.get("kind") not in KINDS or not isinstance(run.get("config"), dict):
        raise RunDirError(f"{path} is corrupt or from an older version: it needs 'kind' (one of {list(KINDS)}) "
                          "and 'config'")
    return run


def used_entries(run_dir: str) -> list[str]:
    """What is in ``run_dir`` besides Hydra's own files (``.hydra/``, ``hydra/``, ``*.log``)."""
    if not os.path.isdir(run_dir):
        return []
    return sorted(e for e in os.listdir(run_dir) if e not in HYDRA_ENTRIES and not e.endswith(".log"))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; tuples compare as lists (JSON has no tuples)."""
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    if isinstance(config, (list, tuple)):
        return {prefix[:-1]: json.loads(json.dumps(config, default=str))}
    return {prefix[:-1]: config}


def changed_keys(stored: dict, new: dict, defaults: dict | None = None) -> list[str]:
    """Dotted keys whose values differ between two configs, except ``RESULT_FREE`` ones. A key the stored
    config lacks and the new one holds empty (``[]`` / ``{}``: options added by a later version, none set),
    or at its value in ``defaults`` (a setting added by a later version, left at its default, which keeps the
    old behaviour), is the same run."""
    a, b = flatten(stored), flatten(json.loads(json.dumps(new, default=str)))
    d = flatten(json.loads(json.dumps(defaults or {}, default=str)))
    added_unset = {k for k in set(b) - set(a) if b[k] in ([], {}) or (k in d and b[k] == d[k])}
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>")
                  and k.rsplit(".", 1)[-1] not in RESULT_FREE and k not in added_unset)


def refuse_used(path: str) -> None:
    """Raise :class:`RunDirError` if ``path`` holds an earlier run (anything but Hydra's own files)."""
    used = used_entries(path)
    if used:
        raise RunDirError(f"run directory {os.path.abspath(path)} is not empty (holds {', '.join(used[:5])}"
                          f"{', ...' if len(used) > 5 else ''}): pass resume=true to continue that run, or "
                          "choose another hydra.run.dir")


class RunDir:
    """An open run directory: checked, locked, ``run.json`` written. Use as a context manager.

    ``RunDir(path, kind, config, resume, extendable, defaults)``: ``config`` is everything the run was started with
    (JSON-able); ``extendable``: dotted keys of ``config`` (integers) that may grow on resume; ``defaults``: the
    config's default values, so that a run stored before a setting existed resumes while it is left at its default.
    ``resuming`` is True when ``resume`` found an earlier run of the same config to continue.
    ``run.json`` lists every growth so far under ``extensions``, ``[{"key", "from", "to"}]``, the newest last.
    """

    def __init__(self, path: str, kind: str, config: dict, resume: bool = False,
                 extendable: tuple[str, ...] = (), defaults: dict | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}; valid: {list(KINDS)}")
        self.path, self.kind, self.config = os.path.abspath(path), kind, config
        self.lock_path = os.path.join(self.path, LOCK_FILE)
        self.resuming = False
        extensions: list[dict] = []
        grown: list[dict] = []
        used = used_entries(self.path)
        if not resume:
            refuse_used(self.path)
        if resume and os.path.exists(os.path.join(self.path, RUN_FILE)):
            stored = read_run(self.path)
            grown = self._check_same_run(stored, extendable, defaults)  # before anything is written
            extensions = list(stored.get("extensions", [])) + grown
            self.resuming = True
        elif used:
            raise RunDirError(f"cannot resume in {self.path}: it holds {', '.join(used[:5])} but no {RUN_FILE}; "
                              "choose another hydra.run.dir")
        os.makedirs(self.path, exist_ok=True)
        self._lock()
        try:
            self._keep_old_summary(grown)
            write_json(os.path.join(self.path, RUN_FILE),
                       {"kind": kind, "version": ssmrl.__version__, "config": config,
                        **({"extensions": extensions} if extensions else {})})
        except BaseException:
            self.close()
            raise

    def _keep_old_summary(self, grown: list[dict]) -> None:
        """An extended run keeps the summary of its old end: ``summary.<key>=<old value>.json``."""
        old = os.path.join(self.path, SUMMARY_FILE)
        if grown and os.path.exists(old):
            tags = ",".join(f"{g['key'].rsplit('.', 1)[-1]}={g['from']}" for g in grown)
            os.replace(old, os.path.join(self.path, f"summary.{tags}.json"))

    def _check_same_run(self, stored: dict, extendable: tuple[str, ...], defaults: dict | None) -> list[dict]:
        """Refuse a changed config; return the ``extendable`` keys that grew, ``[{"key", "from", "to"}]``."""
        where = os.path.join(self.path, RUN_FILE)
        if stored["kind"] != self.kind:
            raise RunDirError(f"cannot resume: {where} is a {stored['kind']!r} run, not {self.kind!r}")
        changed = changed_keys(stored["config"], self.config, defaults)
        old, new = flatten(stored["config"]), flatten(json.loads(json.dumps(self.config, default=str)))
        grown = []
        for key in [k for k in changed if k in extendable]:
            if not (isinstance(old.get(key), int) and isinstance(new.get(key), int) and new[key] > old[key]):
                raise RunDirError(f"cannot resume {self.path}: {key} may only grow on resume (to extend the run), "
                                  f"but it is {old.get(key, '<absent>')!r} in {where} and {new.get(key, '<absent>')!r} "
                                  "now")
            grown.append({"key": key, "from": old[key], "to": new[key]})
            changed.remove(key)
        if changed:
            diffs = "; ".join(f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed[:8])
            raise RunDirError(f"cannot resume {self.path}: the config differs from {where} in {changed} ({diffs}); "
                              f"only {list(RESULT_FREE)} may change on resume"
                              f"{f' and {list(extendable)} grow' if extendable else ''}. Resume with the stored "
                              "config or choose another hydra.run.dir")
        return grown

    def _lock(self) -> None:
        """Create ``run.lock`` holding our pid; refuse while a live process holds it, replace a dead one's."""
        me = f"{socket.gethostname()} {os.getpid()}"
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    host, pid = holder
                    raise RunDirError(f"{self.lock_path} is held by process {pid} on {host}: another run is writing "
                                      f"into {self.path}. Wait for it to end or choose another hydra.run.dir "
                                      "(delete the lock only if that process is gone)") from None
                os.remove(self.lock_path)  # its writer died without cleaning up: the lock is stale
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self._locked = True
            return

    def _holder(self) -> tuple[str, int] | None:
        """``(host, pid)`` of a live lock holder; None when the lock is stale (its process is gone)."""
        try:
            with open(self.lock_path) as f:
                host, pid = f.read().split()
            pid = int(pid)
        except (OSError, ValueError):
            return None  # unreadable or half-written: treated as stale
        if host != socket.gethostname():
            return host, pid  # another machine's process cannot be checked: assume it lives
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, owned by someone else
        return host, pid

    def write_summary(self, summary: dict) -> dict:
        """Write ``summary.json`` (atomically) and return it."""
        write_json(os.path.join(self.path, SUMMARY_FILE), summary)
        return summary

    def close(self) -> None:
        if getattr(self, "_locked", False):
            self._locked = False
            try:
                os.remove(self.lock_path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *_) -> None:
        self.close()
