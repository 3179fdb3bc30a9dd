"""Result records: one JSON file per cell, written atomically, with the environment that made it."""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from convbench.files import replacing

SCHEMA_VERSION = 1


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def host_environment() -> dict:
    """What does not depend on the framework: hardware, Python, the code's own version."""
    # a copy of the code without a .git of its own (a cluster's staged copy, a GPU machine's) names its commit here
    named = os.environ.get("CONVBENCH_GIT_COMMIT")
    status = None if named else _git("status", "--porcelain", "--untracked-files=no")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "git_commit": named or _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(status) if status is not None else None,
        "convbench": _package_version("convbench"),
        "numpy": _package_version("numpy"),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_record(cell, counts: dict, result: dict, error: str | None, environment: dict, started: str,
           process: dict | None = None, wall_s: float | None = None) -> dict:
    """Every record, in one order: which cell (schema version, id, parameters), what it counted and measured
    (`result`, none of it when `error` holds the traceback), its status, then where and when it ran. `process` and
    `wall_s` are left out of a record that no process of ours ran (a launcher that died: run.run_scaling)."""
    made = {"schema_version": SCHEMA_VERSION, "cell_id": cell.id, "cell": cell.to_dict(), "counts": counts,
            **({} if error else result), "status": "failed" if error else "ok", "error": error}
    ran = {"process": process, "environment": environment, "started": started, "wall_s": wall_s}
    return made | {key: value for key, value in ran.items() if value is not None}


def write_record(path: Path, record: dict) -> None:
    """Write `record` as JSON; a reader never sees a half-written file (files.replacing)."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=1)


def finished(path: Path, cell) -> bool:
    """Whether `path` holds an ok record of exactly `cell`: written atomically, a record that parses is
    complete, and its cell must match every parameter (the id alone leaves settings out)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("schema_version") == SCHEMA_VERSION
            and record.get("status") == "ok" and record.get("cell") == json.loads(json.dumps(cell.to_dict())))


def publish(staged: Path, out_dir: Path, overwrite_ok: bool = False) -> str | None:
    """Copy a staged record into out_dir. A failed record does not replace an ok one of the same cell
    unless asked: it goes beside it as <cell>.json.failed, a name no record reader picks up (they read
    *.json). An ok record of other parameters (the config changed since) is never left to be read as this
    cell's result: it moves aside to <cell>.json.stale. Returns what was kept, to log."""
    record, target = json.loads(staged.read_text()), Path(out_dir) / staged.name
    try:
        old = json.loads(target.read_text())
        old_ok, same = old["status"] == "ok", old["cell"] == record["cell"]
    except (OSError, ValueError, KeyError, TypeError):
        old_ok = same = False
    kept = not overwrite_ok and record["status"] != "ok" and old_ok and same
    failed, stale = target.with_name(target.name + ".failed"), target.with_name(target.name + ".stale")
    note = None
    if old_ok and not same:
        os.replace(target, stale)
        note = f"{target}: an ok record of other parameters was there; it is now {stale.name}"
    write_record(failed if kept else target, record)
    if kept:
        return f"{target}: kept the ok record; this run's failed one is {failed.name}"
    failed.unlink(missing_ok=True)  # an older failure beside this record is no longer the news
    return note
