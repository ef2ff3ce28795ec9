"""A run's results folder: evaluated and drawn into a staging folder beside it, then swapped in.

The staging folder replaces the results folder by renaming only when everything succeeded, so a
failed or interrupted run never touches the last good results.
"""
import json
import os
import shutil
import time

import numpy as np
import torch

from . import UserError, page
from .checkpoints import copy_model, save_model
from .figures import write_all
from .metrics import quality_metrics
from .training import encode_all, evaluate

TEST_CODES = "test_codes.npy"  # --lean runs of a 2-D model: every test code, float16


def prepare_staging(out):
    """Check ``out`` early (before any training) and return a fresh staging folder beside it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.staging-{os.getpid()}"
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


def swap_in(staging, out):
    """Replace ``out`` by ``staging`` with two renames; the old folder is deleted only afterwards."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
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
