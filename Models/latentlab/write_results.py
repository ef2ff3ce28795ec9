"""A run's results: every metric on the full test set, every figure, metrics.json, model.pt and the
page's data file, written into the staging folder that ``folder_swap`` swaps in.
"""
import json
import time

import numpy as np
import torch

from . import page_export
from .checkpoints import copy_model, save_model
from .data import first_test_images
from .metrics import quality_metrics
from .run_figures import write_all
from .training import encode_all, evaluate

TEST_CODES = "test_codes.npy"  # --lean runs of a 2-D model: every test code, float16


def evaluate_and_write(spec, model, data, config, state, staging, device, say=print, run_began=None,
                       model_from=None, lean=False, vi_images=0):
    """Every metric on the test set (its first ``config["test_subset"]`` images where that is set), every
    figure, ``metrics.json``, ``model.pt`` and the page's data file into ``staging``; returns the record.

    ``model_from``: the results folder whose ``model.pt`` is carried over unchanged (``--plots-only``);
    otherwise the model is saved afresh. ``lean``: only the metrics (and a 2-D model's test codes).
    ``vi_images``: test images of the per-image variational inference (a VAE's; 0: none; None: a tenth of
    the scored ones).
    """
    began = time.perf_counter()
    scored = first_test_images(data, config.get("test_subset"))
    test = evaluate(model, scored.x_test, config["seed"], y=scored.y_test)
    train_codes = encode_all(model, data.x_train, data.y_train).cpu().numpy()
    metrics, extras = quality_metrics(model, scored, test, train_codes, config["seed"], lean, vi_images)
    extras["frame_labels"] = data.y_test.cpu().numpy()  # kept frames index the test set from its start
    record = {"model": config["kind"], **{k: v for k, v in config.items() if k != "kind"},
              "device": str(device), "threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "data_md5": data.md5,
              "train_seconds": round(state.train_seconds, 2), **metrics}
    timings = {} if lean else write_all(spec, model, scored, state, extras, staging, config["seed"], say)
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
        page_export.write(staging / page_export.FILE, page_export.page_data(spec, model, data, record, extras, drawn))
        if model_from is None:
            save_model(staging, model, config, state)
        else:
            copy_model(model_from, staging)
    (staging / "metrics.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record
