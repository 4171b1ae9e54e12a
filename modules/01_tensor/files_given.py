# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Given code: writing a file safely
#
# Every file TinyTorch and `tito` write (a compressed model, a safetensors or ONNX file,
# a lesson, a report) goes through one function, `write_atomic`. This file holds no task;
# it is the one place where the rules for replacing a file live:
#
# - **All or nothing.** The bytes go to a temporary file beside the target, which is then
#   renamed over it: a reader sees the old file or the new one, never half of one.
# - **Only regular files.** A target that exists and is not a regular file (a folder, a
#   device such as `/dev/null`, a FIFO, a socket) is refused with an `OSError` naming it:
#   renaming over it would replace the device node itself.
# - **Symbolic links are followed.** The file a link points to is replaced; the link stays.
# - **The mode is kept.** The new file gets the old one's permission bits, so a read-only
#   (0444) file stays read-only after it is rewritten; a new file gets `0666 & ~umask`, as
#   `open()` would give it. Rewriting needs write access to the folder, not to the file,
#   as for any rename.
# - **No temporary file survives.** A temporary file is named
#   `.NAME.tinytorch-PID-RANDOM.tmp` and removed on any error; one left by a process that
#   was killed outright (SIGKILL) is removed by the next write to the same target, once its
#   process no longer runs.

# %%
#| default_exp core.files

# %%
#| export
"""One atomic writer for every file TinyTorch and tito write: regular files only, symlinks followed, mode kept, no temporary file left behind (given code)."""
import errno
import os
import re
import secrets
import stat
from pathlib import Path

_TAG = "tinytorch"


def _temporary_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{_TAG}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _stale_temporaries(target: Path) -> list[Path]:
    """This writer's temporary files for `target` whose process no longer runs."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{_TAG}-(\d+)-[0-9a-f]{{8}}\.tmp")
    stale = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return stale
    for name in names:
        found = pattern.fullmatch(name)
        if found and not _running(int(found.group(1))):
            stale.append(target.parent / name)
    return stale


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def checked_target(path: str | os.PathLike) -> Path:
    """The file that writing to `path` replaces: symbolic links followed, and refused
    (OSError naming `path`) when it exists and is not a regular file."""
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise OSError(errno.EEXIST, f"{os.fspath(path)} exists and is {kind}; only a regular file is replaced",
                      os.fspath(path))
    return target


def _new_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # reading the umask means setting it: restore it at once
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, data: bytes, parents: bool = False) -> int:
    """Replace the file at `path` by `data` in one step; returns the bytes written.

    Args:
        path: the file to write; a symbolic link is followed to the file it names.
        data: the whole new content.
        parents: create missing folders first (otherwise a missing folder is an error).

    Raises:
        OSError: `path` exists and is not a regular file (folder, device, FIFO, socket);
            or the folder is missing or not writable. Nothing is changed then.
    """
    target = checked_target(path)
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    for old in _stale_temporaries(target):
        old.unlink(missing_ok=True)
    mode = _new_mode(target)
    tmp = _temporary_name(target)  # NOTE: named before it exists, so any interruption can remove it
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        checked_target(path)  # NOTE: once more just before the rename: it may have become a FIFO meanwhile
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)


def write_figure(fig, path: str | os.PathLike, dpi: int = 120) -> int:
    """Render a matplotlib figure as PNG and write it with `write_atomic`; returns the bytes written.

    Plots follow the same rules as every other file: a half-written PNG never replaces a
    good one, and a FIFO or device named as the target is refused.
    """
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())
