"""Writing results safely: every record and generated file goes through a temporary file in its own folder and a
rename (a reader sees the old file or the new one, never half of one, even when the disk fills); one `convbench run`
at a time writes into a folder (an fcntl lock in it); a folder that cannot be written is named before any cell runs."""
from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

LOCK = ".convbench-run.lock"  # in a run's staging folder, while the run holds it


class OutputError(ValueError):
    """A file or folder cannot be written, or another run is writing there; the message names it."""


def _mode() -> int:
    """0666 less the umask, as open() would give a new file (mkstemp's are 0600: unreadable to the rest of a group)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def replacing(*paths):
    """Temporary paths beside `paths` (same suffix, so savefig and to_csv pick the format); once the block ends
    without error, each is renamed onto its path, all together at the end. On an error nothing is replaced and the
    temporary files go; an OSError (a full disk, a read-only folder) becomes an OutputError naming the paths."""
    paths = [Path(p) for p in paths]
    temps = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=f".tmp{path.suffix}")
            os.close(fd)
            temps.append(Path(tmp))
        yield temps[0] if len(temps) == 1 else temps
        for tmp in temps:
            os.chmod(tmp, _mode())
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"{', '.join(map(str, paths))}: cannot write ({e.strerror or e}); "
                          f"{'the previous file is' if len(paths) == 1 else 'the previous files are'} kept") from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextmanager
def claimed(folders):
    """Hold an exclusive lock on each folder (created if missing) for the block: a second `convbench run` on the same
    folders is refused, naming the first (its process id), instead of deleting what the first staged there. Each folder
    is checked writable here too, before any cell runs. The lock goes with the process, even one killed by -9."""
    held = []
    try:
        for folder in dict.fromkeys(Path(f) for f in folders):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                handle = open(folder / LOCK, "a+")
            except OSError as e:
                raise OutputError(f"{folder}: cannot write records here ({e.strerror or e})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                handle.close()
                raise OutputError(f"{folder}: another convbench run ({owner}) is writing records here; "
                                  f"wait for it to end, or give this run another --out") from None
            held.append(handle)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
        yield
    finally:
        for handle in held:  # a folder left holding nothing but the lock goes (while still locked: no one else's)
            folder = Path(handle.name).parent
            try:
                if [p.name for p in folder.iterdir()] == [LOCK]:
                    Path(handle.name).unlink()
                    folder.rmdir()
            except OSError:  # gone already (the run removed its stage), or filled meanwhile
                pass
            handle.close()


def check_writable(folder) -> None:
    """A folder a run will publish into: created if missing, and a file can be made there (or OutputError)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise OutputError(f"{folder}: cannot write records here ({e.strerror or e})") from None
