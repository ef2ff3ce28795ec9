"""The page's data file of one results folder, ``page_data.js``: everything ``index.html`` shows of
this model. That is its row of the metrics table, the pictures the folder holds, and what the live
explorer needs: the decoder's weights (float16), a sample of test codes with their digits, and for
32-D codes a few test images with their codes, the directions the sliders move along and the
distribution the "sample" button draws from.

A ``<script src>`` file, not JSON: browsers refuse ``fetch`` of files opened from ``file://``.
Large arrays travel as base64 of little-endian binary, about a third of the size of JSON numbers.
"""
import base64
import json
import time

import numpy as np
import torch
from sklearn.decomposition import PCA

from .animations import central_limits
from .metrics import TABLE_COLUMNS, table_cells

FILE = "page_data.js"
SCATTER_POINTS = 3000   # test codes drawn under the 2-D explorer's marker
THUMBS_PER_DIGIT = 2    # start images offered by the 32-D explorer
DIRECTIONS = 8          # sliders of the 32-D explorer


def b64(array, dtype):
    """``array`` as base64 of its little-endian ``dtype`` bytes (row-major)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def decoder_weights(model):
    """Layer sizes and float16 weights (out x in, row-major) and biases of the decoder MLP, ReLU
    between layers and a sigmoid after the last: float16 keeps every decoded pixel within 0.002 of
    float32 (measured on the four models; int8 with per-row scales missed by up to 0.11)."""
    layers = [m for m in model.decoder if isinstance(m, torch.nn.Linear)]
    return {"sizes": [layers[0].in_features] + [m.out_features for m in layers],
            "weights": [b64(m.weight.detach().cpu().numpy(), "f2") for m in layers],
            "biases": [b64(m.bias.detach().cpu().numpy(), "f2") for m in layers]}


def scatter(codes, labels, kind, seed=0):
    """A fixed random sample of test codes and the view the explorer opens on: the prior's ±3.5σ
    square for the VAE, the central codes (as in the GIFs) for the AE."""
    idx = np.sort(np.random.default_rng(seed).permutation(len(codes))[:SCATTER_POINTS])
    view = ((-3.5, 3.5), (-3.5, 3.5)) if kind == "vae" else central_limits(codes)
    return {"codes": b64(codes[idx], "f2"), "labels": b64(labels[idx], "u1"),
            "view": [[float(a), float(b)] for a, b in view]}


def thumbs(x_test, labels, codes):
    """The first test images of each digit, their pixels (uint8) and codes (float32)."""
    idx = np.concatenate([np.flatnonzero(labels == d)[:THUMBS_PER_DIGIT] for d in range(10)])
    pixels = (x_test[idx].cpu().numpy() * 255).round()
    return {"labels": labels[idx].tolist(), "images": b64(pixels, "u1"), "codes": b64(codes[idx], "f4")}


def directions(kind, train_codes, kl_per_dim):
    """The sliders' directions: VAE, the dimensions with the largest KL, in units of the prior's σ;
    AE, the top principal components of the training codes, in units of their standard deviation.
    A slider shows (z − origin)·v / scale, so the two kinds share one rule in the page."""
    dim = train_codes.shape[1]
    if kind == "vae":
        top = np.argsort(kl_per_dim)[::-1][:DIRECTIONS]
        vectors = np.eye(dim)[top]
        return {"origin": [0.0] * dim, "vectors": b64(vectors, "f4"), "scale": [1.0] * len(top),
                "names": [f"z{j + 1} · KL {kl_per_dim[j]:.2f}" for j in top]}
    pca = PCA(DIRECTIONS, random_state=0).fit(train_codes)
    return {"origin": pca.mean_.tolist(), "vectors": b64(pca.components_, "f4"),
            "scale": np.sqrt(pca.explained_variance_).tolist(),
            "names": [f"PC{i + 1} · {100 * r:.0f}%" for i, r in enumerate(pca.explained_variance_ratio_)]}


def sampler(kind, dim, density):
    """What "sample" draws from, as a Gaussian mixture (weights, means, Cholesky factors): the prior
    N(0, I) for the VAE, the GMM fit on the training codes for the AE (the one the metrics use)."""
    if kind == "vae":
        weights, means, chol = np.ones(1), np.zeros((1, dim)), np.eye(dim)[None]
    else:
        weights, means = density.weights_, density.means_
        chol = np.linalg.cholesky(density.covariances_)
    return {"weights": weights.tolist(), "means": b64(means, "f4"), "chol": b64(chol, "f4")}


def page_data(spec, model, data, record, extras, figures):
    """The dict ``index.html`` reads for this model; ``figures`` are the PNG/GIF names in the folder."""
    labels = data.y_test.cpu().numpy()
    out = {
        "key": spec.key, "label": spec.label, "kind": spec.kind, "latent_dim": spec.latent_dim,
        "script": spec.script, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "run": {k: record.get(k) for k in ("epochs", "seed", "precision", "device", "torch_version",
                                           "train_subset", "plots_only")},
        "table": {"columns": [c[1] for c in TABLE_COLUMNS], "cells": table_cells(record),
                  "values": {c[0]: record[c[0]] for c in TABLE_COLUMNS if c[0] in record}},
        "figures": list(figures),
        "decoder": decoder_weights(model),
    }
    if spec.latent_dim == 2:
        out["scatter"] = scatter(extras["test_codes"], labels, spec.kind)
    else:
        out["thumbs"] = thumbs(data.x_test, labels, extras["test_codes"])
        out["directions"] = directions(spec.kind, extras["train_codes"], extras["kl_per_dim"])
        out["sampler"] = sampler(spec.kind, spec.latent_dim, extras["density"])
    return out


def write(path, data):
    """``path`` as a script that files ``data`` under its key in ``window.LATENTLAB_DATA``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    path.write_text("// Written by the model's script for index.html; regenerated by every run.\n"
                    "window.LATENTLAB_DATA = window.LATENTLAB_DATA || {};\n"
                    f"window.LATENTLAB_DATA[{json.dumps(data['key'])}] = {text};\n", encoding="utf-8")
