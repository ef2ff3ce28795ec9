"""A run's results folder: one writer at a time, evaluated and drawn into a staging folder beside
it, then swapped in.

The staging folder replaces the results folder by renaming only when everything succeeded, so a
failed or interrupted run never touches the last good results. An OS lock beside the folder keeps a
second run out for as long as the first one lives, however it ends; the next writer removes what a
killed run left behind and finishes (or undoes) a swap it cut in half.
"""
import glob
import json
import os
import shutil
import time
from contextlib import contextmanager

import numpy as np
import torch

from . import UserError, page
from .checkpoints import copy_model, save_model
from .figures import write_all
from .metrics import quality_metrics
from .training import encode_all, evaluate

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

TEST_CODES = "test_codes.npy"  # --lean runs of a 2-D model: every test code, float16


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


def evaluate_and_write(spec, model, data, config, state, staging, device, say=print, run_began=None,
                       model_from=None, lean=False):
    """Every metric on the full test set, every figure, ``metrics.json``, ``model.pt`` and the page's
    data file into ``staging``; returns the metrics record.

    ``model_from``: the results folder whose ``model.pt`` is carried over unchanged (``--plots-only``);
    otherwise the model is saved afresh. ``lean``: only the metrics (and a 2-D model's test codes).
    """
    began = time.perf_counter()
    test = evaluate(model, data.x_test, config["seed"])
    train_codes = encode_all(model, data.x_train).cpu().numpy()
    metrics, extras = quality_metrics(model, data, test, train_codes, config["seed"])
    record = {"model": spec.kind, **{k: v for k, v in config.items() if k != "kind"},
              "device": str(device), "threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "data_md5": data.md5,
              "train_seconds": round(state.train_seconds, 2), **metrics}
    timings = {} if lean else write_all(spec, model, data, state, extras, staging, config["seed"], say)
    record["figure_seconds"] = timings
    record["eval_seconds"] = round(time.perf_counter() - began - sum(timings.values()), 2)
    record["run_seconds"] = round(time.perf_counter() - (run_began or began), 2)
    record["plots_only"] = model_from is not None  # then run_seconds timed no training
    record["history"] = state.history
    if lean:
        if spec.latent_dim == 2:  # small, and all a sweep needs to draw the plane
            np.save(staging / TEST_CODES, extras["test_codes"].astype(np.float16))
    else:
        drawn = [name for name in timings if name.endswith((".png", ".gif")) and (staging / name).exists()]
        page.write(staging / page.FILE, page.page_data(spec, model, data, record, extras, drawn))
        if model_from is None:
            save_model(staging, model, config, state)
        else:
            copy_model(model_from, staging)
    (staging / "metrics.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record
