"""File helpers: atomic writes of files and folders, so an interrupted run leaves the old one or
the new one, never half of one. What they write gets the modes the umask gives any file the user
creates (0644 and 0755 under umask 022), even where the writer made it private: mkstemp makes
0600 files, and so does safetensors (0.8) for every weights file it saves."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from genie.errors import GenieError


def read_text(path: str | Path) -> str:
    """The file as UTF-8 (a BOM is dropped); a missing file or bad bytes name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise GenieError("no such file", path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GenieError("not UTF-8 text", path, raw[: exc.start].count(b"\n") + 1) from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"):
    """Write to a temporary file beside `path`, then rename it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~umask())
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process's umask (read by setting it, so set back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def ordinary_modes(folder: Path) -> None:
    """`folder` and everything in it get the modes a new folder (0777) or file (0666) gets under
    the umask (symbolic links are left alone: chmod would change what they point at)."""
    mask = umask()
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for path in (Path(root, name) for name in files):
            if not path.is_symlink():
                os.chmod(path, 0o666 & ~mask)


def staging(path: str | Path, unique: bool = False) -> Path:
    """Where a folder for `path` is built: `.NAME.tmp` beside it, which the next build of the same
    folder clears (`unique`: `.NAME.<random>.tmp`, for builders that may run at once)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp" if unique else f".{path.name}.tmp")


def install(tmp: Path, path: Path) -> None:
    """Rename the finished folder `tmp` to `path`, its files given ordinary modes; an old folder
    there is moved aside first and deleted only once the new one is in place (put back if that
    rename fails)."""
    ordinary_modes(tmp)
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_folder(path: str | Path, unique: bool = False):
    """Yield an empty staging folder for `path`; on success it replaces `path` (`install`), on a
    failure it is removed and `path` is left as it was."""
    path = Path(path)
    tmp = staging(path, unique)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        install(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
