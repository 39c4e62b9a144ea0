"""One run per folder. What shapes a run's trajectory (config, data, tokenizer source, process
count) is fingerprinted in `run.json`; a lock is held while the run trains; a `train` whose
fingerprint differs from the folder's run is refused before any step. So a second start either
continues the same run exactly, reprints a finished run's metrics, or stops with one line: it
never resumes another run's checkpoint or prints another run's metrics. A start that stops before
writing anything of a run (a mistyped data.dir, features.dir or model.name) takes back the folder,
lock and fingerprint it made: a rerun finds things as they were."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from genie.config import GenieConfig
from genie.errors import GenieError
from genie.io import atomic_write

FINGERPRINT = "run.json"
REPLACED = ".replaced"  # a run that train.overwrite=true replaces, kept until the new run has a checkpoint
LOCK, OWNER = ".lock", ".lock.pid"
OWN = {LOCK, OWNER, REPLACED}
# Config keys that cannot change what a run computes: where it writes, whether and how often it
# checkpoints, how batches are loaded or decoded (a prediction does not depend on its decode batch,
# up to a float32 rounding that breaks a near tie: docs/decoding-and-evaluation.md), and
# when it stops early (the steps up to the stop are the same whatever the patience).
UNSHAPING = {"train.output_dir", "train.resume", "train.overwrite", "train.checkpoint_every_steps",
             "train.keep_checkpoints", "train.report_to", "decode.batch_size", "decode.chunk_size", "data.num_workers",
             "data.demo_dir", "train.patience", "train.min_delta", "schema"}


def default_output_dir(cfg: GenieConfig) -> str:
    """runs/<task> for the demo (runs/<task>-context for its context variant), runs/<task>-<data
    folder name> for real data (a list of tasks: `multitask`), so each demo and dataset get their own folder."""
    name = cfg.task if isinstance(cfg.task, str) else "multitask"
    if cfg.data.dir is None:
        return f"runs/{name}-context" if cfg.data.demo_context else f"runs/{name}"
    return f"runs/{name}-{Path(cfg.data.dir).resolve().name}"


def fingerprint(cfg: GenieConfig, data_files: dict[str, Path], processes: int) -> dict[str, Any]:
    """The run's identity: every config key that shapes it, the content of its split files, where
    its tokenizer comes from, and how many processes split the global batch. `data_files`:
    `<task>/<split>` -> file: the files' content is fingerprinted by digest, and `data.dir` itself is a
    config key, so the same data in another folder is another run."""
    config = {key: value for key, value in flatten(cfg.to_dict()).items() if key not in UNSHAPING}
    model = Path(cfg.model.name)
    return {"config": config,
            "data": {name: _digest([path]) for name, path in data_files.items()},
            "tokenizer": _digest(sorted(p for p in model.iterdir() if "token" in p.name or p.suffix == ".model"))
            if model.is_dir() else cfg.model.name,
            "processes": processes,
            "global_batch": cfg.train.batch_size * cfg.train.gradient_accumulation_steps * processes}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during `train`: where the run stopped, for the one line the CLI prints."""

    def __init__(self, folder: Path, checkpoint: Path | None):
        self.folder, self.checkpoint = folder, checkpoint
        where = f"last checkpoint {checkpoint}" if checkpoint else "no checkpoint yet (it starts again)"
        super().__init__(f"{folder}: interrupted; {where}")


class RunFolder:
    """A run's output folder, claimed by one process (the main one) for the run's duration."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.claimed = False  # this process's run owns the folder's contents
        self._lock: FileLock | None = None
        # What this start made, taken back if it writes nothing of a run: the folders lock() created
        # (innermost first), whether it created the lock file, and whether claim() wrote the
        # fingerprint, with the file's bytes before (None: there was none).
        self._new_folders: list[Path] = []
        self._new_lock = False
        self._wrote_fingerprint = False
        self._fingerprint_before: bytes | None = None
        self._inputs: tuple[Path, ...] = ()

    def lock(self) -> None:
        """Hold the folder's lock: an OS file lock, so a killed run's lock does not block."""
        self._new_folders = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self._new_lock = not (self.path / LOCK).exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            self._new_lock = False  # another run's
            owner = self.path / OWNER
            pid = owner.read_text().strip() if owner.is_file() else "unknown"
            raise GenieError(f"another genie train (pid {pid}) is running in this folder; wait for it to end, "
                             "or give this run its own train.output_dir=...", self.path) from None
        (self.path / OWNER).write_text(f"{os.getpid()}\n")
        self._lock = lock

    def release(self) -> None:
        """Let the folder go; a start that wrote nothing of a run takes back what it made."""
        if self._lock is None:
            return
        started = bool(self._held(self._inputs))
        (self.path / OWNER).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None
        if not started:
            self._take_back()

    def _take_back(self) -> None:
        """The fingerprint as it was before this start, then its lock file and new folders (each
        only if empty: what another process put there stays)."""
        if self._wrote_fingerprint and self._fingerprint_before is None:
            (self.path / FINGERPRINT).unlink(missing_ok=True)
        elif self._wrote_fingerprint:
            (self.path / FINGERPRINT).write_bytes(self._fingerprint_before)
        if self._new_lock:
            (self.path / LOCK).unlink(missing_ok=True)
        for folder in self._new_folders:
            if any(folder.iterdir()):
                break
            folder.rmdir()

    def claim(self, fingerprint: dict, resume: bool, overwrite: bool, inputs: tuple[Path, ...] = ()) -> str:
        """`new` (the folder is this run's now), `resume` (the same run, unfinished) or `finished`
        (the same run, its test metrics written); another run there is an error unless `overwrite`.
        `inputs` (data files, feature folders) may live inside the folder: they are not a run's."""
        saved = self._saved()
        self._inputs = inputs
        held = self._held(inputs)
        self.claimed = True
        if not held:  # nothing of a run yet (a fingerprint alone: a start that stopped before any output)
            path = self.path / FINGERPRINT
            self._fingerprint_before = path.read_bytes() if path.is_file() else None
            self._wrote_fingerprint = True
            self._write(fingerprint)
            return "new"
        if saved == fingerprint and resume and not overwrite:
            return "finished" if (self.path / "test_metrics.json").is_file() else "resume"
        self.claimed = overwrite
        if not overwrite:
            if saved is None:
                problem = f"holds files of another run ({', '.join(sorted(held)[:3])}) without a {FINGERPRINT}"
            elif saved == fingerprint:
                problem = "holds this run already, and train.resume=false does not continue it"
            else:
                problem = f"holds another run: {differences(saved, fingerprint)}"
            raise GenieError(f"{problem}; give this run its own train.output_dir=..., or set "
                             "train.overwrite=true to replace it (the old run is kept until the new one has "
                             "saved a checkpoint)", self.path)
        self._set_aside(held)
        self._write(fingerprint)
        return "new"

    def checkpointed(self) -> None:
        """The run has a checkpoint: a run it replaced can go."""
        shutil.rmtree(self.path / REPLACED, ignore_errors=True)

    def _held(self, inputs: tuple[Path, ...]) -> list[str]:
        """The folder's entries that belong to a run: not its lock, fingerprint or set-aside run,
        nor a folder holding the run's inputs (a demo built inside the run folder)."""
        inside = {folder for path in map(Path.resolve, map(Path, inputs)) for folder in (path, *path.parents)}
        return [p.name for p in self.path.iterdir()
                if p.name not in OWN and p.name != FINGERPRINT and p.resolve() not in inside]

    def _saved(self) -> dict | None:
        path = self.path / FINGERPRINT
        if not path.is_file():
            return None
        try:
            return _with_added_keys(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            raise GenieError(f"{FINGERPRINT} is not valid JSON; move the folder away or set "
                             "train.output_dir=...", self.path) from None

    def _write(self, fingerprint: dict) -> None:
        with atomic_write(self.path / FINGERPRINT) as handle:
            json.dump(fingerprint, handle, indent=1, sort_keys=True)

    def _set_aside(self, held: list[str]) -> None:
        """Move the old run's files into `.replaced` (kept from an earlier replacement if one is
        there: what is in the folder then never reached a checkpoint)."""
        aside = self.path / REPLACED
        keep = not aside.exists()
        aside.mkdir(exist_ok=True)
        for name in [*held, FINGERPRINT]:
            source = self.path / name
            if not source.exists():
                continue
            if keep:
                source.rename(aside / name)
            elif source.is_dir():
                shutil.rmtree(source)
            else:
                source.unlink()


def _with_added_keys(saved: dict) -> dict:
    """A fingerprint written before some config keys existed, with those keys at their defaults:
    what the run did before the key was added (`train.max_grad_norm`: clipping at 1.0)."""
    defaults = {key: value for key, value in flatten(GenieConfig().to_dict()).items() if key not in UNSHAPING}
    return {**saved, "config": {**defaults, **saved.get("config", {})}}


def differences(saved: dict, wanted: dict, limit: int = 3) -> str:
    """The first keys whose values differ, `key: old -> new`: config keys, then data files, then
    tokenizer and processes."""
    old, new = _keys(saved), _keys(wanted)
    keys = [key for key in dict.fromkeys([*new, *old]) if old.get(key, "<unset>") != new.get(key, "<unset>")]
    shown = [f"{key}: {_short(old.get(key, '<unset>'))} -> {_short(new.get(key, '<unset>'))}" for key in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(shown) + more


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as `section.key` -> value."""
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _keys(fingerprint: dict) -> dict[str, Any]:
    """A fingerprint as one flat mapping: config keys, `data <file>`, and the rest by name."""
    out = dict(fingerprint.get("config", {}))
    out.update({f"data {path}": digest for path, digest in fingerprint.get("data", {}).items()})
    out.update({key: value for key, value in fingerprint.items() if key not in ("config", "data")})
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:16] + "..." + text[-8:]


def _digest(paths: list[Path]) -> str:
    """sha256 of the files' bytes, in order (split files are a few MB: milliseconds)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
