"""The run directory: run.json, append-only logs, checkpoints with checksums, and the cell lock.

    runs/<suite>/<agent>/<env>/seed_<k>/
        run.json            spec, resolved config, protocols, provenance, attempts, status, progress
        metrics.jsonl       one line per epoch (training metrics), append-only
        episodes.jsonl      one line per finished episode (train / eval / final), append-only
        log.txt             human-readable log of the run's life (resumes, corrupt checkpoints...)
        checkpoints/        ckpt_<epoch>.pt + .sha256, the two newest kept
        replay/             frames.u8 (append-only frames of finished episodes)
        lock                held (flock) by the live worker

Every write of a whole file goes through `atomic_write` (temp file, fsync, rename); the JSONL logs
are only appended to, and on resume cut back to the length recorded in the checkpoint so an epoch
that is replayed after a crash is not logged twice.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any, Iterator

import torch

FORMAT_VERSION = 1
KEEP_CHECKPOINTS = 2


class RunDirError(RuntimeError):
    """A run directory cannot be used as asked (another config, another format, locked...)."""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Fault injection for the kill-and-resume tests: WMBENCH_FAULT=<name>:<n> SIGKILLs this process
    the n-th time it reaches the point `name`. Does nothing unless that variable is set."""
    spec = os.environ.get("WMBENCH_FAULT", "")
    if not spec.startswith(name + ":"):
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] == int(spec.split(":", 1)[1]):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, data: bytes, fault: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        if fault and os.environ.get("WMBENCH_FAULT", "").startswith(fault + ":"):
            handle.write(data[: len(data) // 2])
            handle.flush()
            fault_point(fault)
            handle.seek(0)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSONL log; a truncated or corrupt last line (a crash mid-append) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class JsonlLog:
    """An append-only JSON-lines file; `size()` and `truncate()` support exact resume.

    Appends are not fsynced one by one (an agent may log an epoch per env step); `sync()` makes them
    durable and is called before every checkpoint, which records the synced size.
    """

    def __init__(self, path: Path):
        self.path = path

    def append(self, rows: list[dict[str, Any]] | dict[str, Any]) -> None:
        rows = [rows] if isinstance(rows, dict) else rows
        if not rows:
            return
        text = "".join(json.dumps(row, sort_keys=True, default=float) + "\n" for row in rows)
        with open(self.path, "a") as handle:
            handle.write(text)

    def sync(self) -> None:
        if self.path.exists():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        if self.path.exists() and self.path.stat().st_size > size:
            os.truncate(self.path, size)


class CellLock:
    """An exclusive flock on <run_dir>/lock, held by the live worker; released when it dies."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "lock"
        self._handle: io.TextIOWrapper | None = None

    def acquire(self, owner: dict[str, Any]) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(owner) + "\n")
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @staticmethod
    def is_held(run_dir: Path) -> bool:
        path = run_dir / "lock"
        if not path.exists():
            return False
        with open(path) as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.run_json = self.dir / "run.json"
        self.metrics = JsonlLog(self.dir / "metrics.jsonl")
        self.episodes = JsonlLog(self.dir / "episodes.jsonl")
        self.checkpoint_dir = self.dir / "checkpoints"
        self.replay_dir = self.dir / "replay"

    # ---- run.json --------------------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        if not self.run_json.exists():
            return None
        data = read_json(self.run_json)
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise RunDirError(f"{self.run_json}: format_version {version!r}, this wmbench reads {FORMAT_VERSION}; "
                              "use a wmbench version that matches, or another --runs-dir")
        return data

    def write(self, data: dict[str, Any]) -> None:
        write_json(self.run_json, {**data, "format_version": FORMAT_VERSION})

    def update(self, **fields: Any) -> dict[str, Any]:
        data = self.read() or {}
        data.update(fields)
        self.write(data)
        return data

    def log(self, message: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "log.txt", "a") as handle:
            handle.write(f"{now_iso()} {socket.gethostname()} pid={os.getpid()} {message}\n")

    # ---- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, epoch: int, payload: dict[str, Any]) -> Path:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        path = self.checkpoint_dir / f"ckpt_{epoch:06d}.pt"
        atomic_write(path, data, fault="checkpoint_mid_write")
        fault_point("checkpoint_before_digest")
        atomic_write(path.with_suffix(".pt.sha256"), hashlib.sha256(data).hexdigest().encode())
        for old in self._checkpoints()[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
            old.with_suffix(".pt.sha256").unlink(missing_ok=True)
        return path

    def _checkpoints(self) -> list[Path]:
        return sorted(self.checkpoint_dir.glob("ckpt_*.pt")) if self.checkpoint_dir.exists() else []

    def iter_valid_checkpoints(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Newest first; a checkpoint whose checksum does not match is reported in log.txt and skipped."""
        for path in reversed(self._checkpoints()):
            digest_path = path.with_suffix(".pt.sha256")
            data = path.read_bytes()
            expected = digest_path.read_text().strip() if digest_path.exists() else None
            if expected != hashlib.sha256(data).hexdigest():
                self.log(f"checkpoint {path.name} is corrupt or incomplete (checksum mismatch); trying an older one")
                continue
            try:
                payload = torch.load(io.BytesIO(data), weights_only=False)
            except Exception as err:  # a valid checksum over an unreadable file: report and go on
                self.log(f"checkpoint {path.name} cannot be loaded ({err}); trying an older one")
                continue
            yield path, payload

    def has_checkpoint(self) -> bool:
        return bool(self._checkpoints())
