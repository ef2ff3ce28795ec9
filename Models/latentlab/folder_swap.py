"""A results folder's safety: one writer at a time, a staging folder beside it, an atomic swap.

The staging folder replaces the results folder by renaming only when everything succeeded, so a
failed or interrupted run never touches the last good results. An OS lock beside the folder keeps a
second run out for as long as the first one lives, however it ends; the next writer removes what a
killed run left behind and finishes (or undoes) a swap it cut in half.
"""
import glob
import os
import shutil
from contextlib import contextmanager

from . import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def _beside(out, kind):
    """Sibling paths of ``out`` of one kind: its staging folders, old copies, lock."""
    return out.parent / f".{out.name}.{kind}"


def lock(out):
    """An exclusive OS lock on ``out`` for as long as the returned descriptor is open (the process's
    death closes it). Raises UserError naming the process that holds it."""
    path = _beside(out, "lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot write results next to {out}: {e.strerror or e}") from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"{out} is being written by another run (process {other}); "
                        f"wait for it to end or stop it") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def recover(out):
    """Clean up after runs that died writing ``out`` (only the lock holder may call this): a swap cut
    between its two renames is finished when the new folder is complete (its metrics.json, written
    last, is there) and undone otherwise; leftover staging and old folders are removed."""
    pattern = glob.escape(f".{out.name}.")
    olds = sorted(out.parent.glob(pattern + "old-*"))
    stagings = sorted(out.parent.glob(pattern + "staging-*"), key=lambda p: p.stat().st_mtime)
    if not out.exists() and olds:
        complete = [s for s in stagings if (s / "metrics.json").exists()]
        os.rename(complete[-1] if complete else olds[-1], out)
    for leftover in olds + stagings:
        shutil.rmtree(leftover, ignore_errors=True)


def _check_target(out):
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write results next to {out}: {e.strerror or e}") from None


def _new_staging(out):
    """A fresh, writable staging folder beside ``out``."""
    try:
        staging = _beside(out, f"staging-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        probe = staging / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write results next to {out}: {e.strerror or e}") from None
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"cannot replace {out}: it is not writable")
    return staging


@contextmanager
def writing(out):
    """Be the one writer of ``out`` (checked before any training): lock it, repair what a killed run
    left, and yield a fresh staging folder, removed at the end whatever happens."""
    _check_target(out)
    held = lock(out)
    try:
        recover(out)
        staging = _new_staging(out)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(held)


def swap_in(staging, out):
    """Replace ``out`` by ``staging`` with two renames; the old folder is deleted only afterwards."""
    old = _beside(out, f"old-{os.getpid()}")
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)
