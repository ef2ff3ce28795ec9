"""The page's data files. ``page_data.js`` in each results folder holds everything ``index.html``
shows of that model: its row of the metrics table, the pictures the folder holds, the encoder's and
the decoder's weights, the codes of a fixed pool of test digits (the 2-D scatter, the nearest
neighbours of a drawing), and for 32-D codes a few test images with their codes, the directions
the sliders move along and the distribution the "sample" button draws from. ``page/shared_data.js``
holds what the four share: the pool's pixels and labels and the LeNet judge. ``page/lab_data.js``
holds the training digits of the page's "train it yourself" lab, loaded only when that is used.

A ``<script src>`` file, not JSON: browsers refuse ``fetch`` of files opened from ``file://``.
Large arrays travel as base64 of little-endian binary, about a third of the size of JSON numbers;
weights as float16, byte-shuffled and deflated (``packed``), which the page inflates with the
browser's DecompressionStream.
"""
import base64
import json
import time
import zlib

import numpy as np
import torch
from sklearn.decomposition import PCA

from .metrics import TABLE_COLUMNS, table_cells
from .run_animations import central_limits
from .training import encode_all

FILE = "page_data.js"
SHARED_FILE = "shared_data.js"  # in page/
LAB_FILE = "lab_data.js"        # in page/
LAB = 10_000            # training digits the page's lab trains on (its torch recipe's size: docs/page.md)
POOL = 2000             # test digits the page knows by their pixels: the 2-D scatter, nearest neighbours
THUMBS_PER_DIGIT = 2    # start images offered by the 32-D explorer
DIRECTIONS = 8          # sliders of the 32-D explorer
# Low mantissa bits of float16 rounded away before packing, so that the page's data stays within
# 10 MiB: each part keeps the fewest bits that hold its bound against float32 (encoders' means within
# 2% of a dimension's spread, decoders' pixels within 0.02; the pool's codes only rank neighbours).
# The 2-D VAE's decoder keeps all 10: the page integrates its likelihood over the plane.
DROP_BITS = {"encoder": 0, "decoder": 3, "2-D decoder": 2, "exact decoder": 0, "classifier": 2, "codes": 4}


def b64(array, dtype):
    """``array`` as base64 of its little-endian ``dtype`` bytes (row-major)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def float16_bits(array, drop_bits=0):
    """``array`` as float16 bit patterns (uint16), the lowest ``drop_bits`` mantissa bits rounded
    away (to nearest, ties to even)."""
    h = np.asarray(array, dtype=np.float32).astype("<f2").view(np.uint16).astype(np.uint32)
    if drop_bits:
        h = ((h + (1 << (drop_bits - 1)) - 1 + ((h >> drop_bits) & 1)) >> drop_bits) << drop_bits
    return h.astype(np.uint16)


def packed(arrays, drop_bits=0):
    """Float arrays as one base64 string of their float16 values, byte-shuffled (every high byte,
    then every low byte: the high bytes, sign and exponent, deflate well) and zlib-deflated;
    ``shapes`` lets the page cut it back into the arrays (page/nn.js, ``unpack``). Exact for the
    float16 values: only the rounding to float16 (and the dropped bits) loses anything."""
    arrays = [np.asarray(a) for a in arrays]
    bits = np.concatenate([float16_bits(a, drop_bits).ravel() for a in arrays]) if arrays else np.zeros(0, np.uint16)
    raw = bits.view(np.uint8).reshape(-1, 2)
    data = zlib.compress(raw[:, 1].tobytes() + raw[:, 0].tobytes(), 9)
    return {"shapes": [list(a.shape) for a in arrays], "drop_bits": drop_bits,
            "data": base64.b64encode(data).decode()}


ACTIVATIONS = (torch.nn.ReLU, torch.nn.LeakyReLU)  # what page/nn.js runs between Linear layers


def runs_in_page(model):
    """None if page/nn.js can run the model's encoder and decoder (Linear layers with a ReLU or a LeakyReLU
    between them, as ``models.mlp`` builds, and a Bernoulli decoder), else one line saying why not."""
    if model.conditional:
        return ("the page's explorers decode a point z alone; this model decodes z with the digit's label, "
                "so the page shows its table row and figures only")
    if model.likelihood.name != "bernoulli":
        return (f"the page decodes pixels as a Bernoulli's sigmoid(logit); this model's likelihood is "
                f"{model.likelihood.name}, so the page shows its table row and figures only")
    for part in ("encoder", "decoder"):
        layers = list(getattr(model, part).children())
        kinds = [type(m) for m in layers]
        acts = kinds[1::2]
        expected = [torch.nn.Linear] * (len(layers) // 2 + 1)
        if kinds[::2] != expected or len(layers) % 2 == 0 or not all(a in ACTIVATIONS for a in acts) \
                or len(set(acts)) > 1:
            names = ", ".join(dict.fromkeys(k.__name__ for k in kinds if k not in (torch.nn.Linear, *ACTIVATIONS)))
            return (f"the page runs encoders and decoders of Linear layers with a ReLU or a LeakyReLU between "
                    f"them; this model's {part} has {names or 'another order of layers'}, so the page shows its "
                    f"table row and figures only")
    return None


def mlp_weights(sequential, drop_bits):
    """Layer sizes, the activation's slope below zero (0 for a ReLU), then weight (out x in, row-major)
    and bias of every Linear layer, packed (the page adds the decoder's sigmoid and splits the VAE
    encoder's mean/log-variance). Only for models that ``runs_in_page``."""
    layers = [m for m in sequential if isinstance(m, torch.nn.Linear)]
    slope = next((float(getattr(m, "negative_slope", 0.0)) for m in sequential if isinstance(m, ACTIVATIONS)), 0.0)
    arrays = [t.detach().cpu().numpy() for m in layers for t in (m.weight, m.bias)]
    return {"sizes": [layers[0].in_features] + [m.out_features for m in layers], "slope": slope,
            "packed": packed(arrays, drop_bits)}


def classifier_weights(net):
    """The LeNet's parameters in ``named_parameters`` order (conv weights out x in x 5 x 5), packed."""
    names, arrays = zip(*[(n, p.detach().cpu().numpy()) for n, p in net.named_parameters()])
    return {"names": list(names), "packed": packed(arrays, DROP_BITS["classifier"])}


def exact_view(model):
    """Whether the page offers the true posterior of this model (a variational one with a 2-D latent space)."""
    return model.variational and model.latent_dim == 2


def pool_index(n_test, seed=0):
    """The fixed test digits the page shows by their pixels, in test-set order."""
    return np.sort(np.random.default_rng(seed).permutation(n_test)[:POOL])


def scatter(pool_codes, model):
    """The pool's codes (float16) and the view the 2-D explorer opens on: the prior's ±3.5σ square
    for a model with the prior N(0, I), the central codes (as in the GIFs) for an autoencoder."""
    view = ((-3.5, 3.5), (-3.5, 3.5)) if model.variational else central_limits(pool_codes)
    return {"codes": b64(pool_codes, "f2"), "view": [[float(a), float(b)] for a, b in view]}


def thumbs(model, x_test, labels):
    """The first test images of each digit, their pixels (uint8) and codes (float32)."""
    idx = np.concatenate([np.flatnonzero(labels == d)[:THUMBS_PER_DIGIT] for d in range(10)])
    pixels = (x_test[idx].cpu().numpy() * 255).round()
    return {"labels": labels[idx].tolist(), "images": b64(pixels, "u1"),
            "codes": b64(encode_all(model, x_test[idx]).cpu().numpy(), "f4")}


def directions(model, train_codes, kl_per_dim):
    """The sliders' directions: a variational model, the dimensions with the largest KL, in units of the
    prior's σ; an autoencoder, the top principal components of the training codes, in units of their
    standard deviation. A slider shows (z − origin)·v / scale, so both share one rule in the page."""
    dim = train_codes.shape[1]
    if model.variational:
        top = np.argsort(kl_per_dim)[::-1][:DIRECTIONS]
        vectors = np.eye(dim)[top]
        return {"origin": [0.0] * dim, "vectors": b64(vectors, "f4"), "scale": [1.0] * len(top),
                "names": [f"z{j + 1} · KL {kl_per_dim[j]:.2f}" for j in top]}
    pca = PCA(DIRECTIONS, random_state=0).fit(train_codes)
    return {"origin": pca.mean_.tolist(), "vectors": b64(pca.components_, "f4"),
            "scale": np.sqrt(pca.explained_variance_).tolist(),
            "names": [f"PC{i + 1} · {100 * r:.0f}%" for i, r in enumerate(pca.explained_variance_ratio_)]}


def sampler(model):
    """What "sample" draws from: the model's prior as a Gaussian mixture (weights, means, Cholesky
    factors): N(0, I) for a VAE, the GMM fit on the training codes for an autoencoder (as the metrics)."""
    weights, means, chol = model.prior_mixture()
    return {"weights": weights.tolist(), "means": b64(means, "f4"), "chol": b64(chol, "f4")}


def page_data(spec, model, data, record, extras, figures):
    """The dict ``index.html`` reads for this model; ``figures`` are the PNG/GIF names in the folder.
    ``data`` holds the whole test set: the pool and the thumbnails are the same whatever --test-subset
    scored the run."""
    labels = data.y_test.cpu().numpy()
    out = {
        "key": spec.key, "label": spec.label, "kind": model.name, "variational": model.variational,
        "exact_view": exact_view(model), "latent_dim": spec.latent_dim,
        "script": spec.script, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "run": {k: record.get(k) for k in ("arch", "epochs", "seed", "precision", "device", "torch_version",
                                           "train_subset", "test_subset", "plots_only")},
        "table": {"columns": [c[1] for c in TABLE_COLUMNS], "cells": table_cells(record),
                  "values": {c[0]: record[c[0]] for c in TABLE_COLUMNS if c[0] in record}},
        "figures": list(figures),
    }
    out["unsupported"] = runs_in_page(model)
    if out["unsupported"] is not None:
        return out
    out["encoder"] = mlp_weights(model.encoder, DROP_BITS["encoder"])
    decoder = "exact decoder" if exact_view(model) else "2-D decoder" if spec.latent_dim == 2 else "decoder"
    out["decoder"] = mlp_weights(model.decoder, DROP_BITS[decoder])
    pool_codes = encode_all(model, data.x_test[pool_index(len(labels))]).cpu().numpy()
    if spec.latent_dim == 2:
        out["scatter"] = scatter(pool_codes, model)
    else:
        out["pool_codes"] = packed([pool_codes], DROP_BITS["codes"])
        out["thumbs"] = thumbs(model, data.x_test, labels)
        out["directions"] = directions(model, extras["train_codes"], extras["kl_per_dim"])
        out["sampler"] = sampler(model)
    return out


def shared_data(net, x_test, y_test):
    """What the four models' panels share: the pool's digits and labels, and the LeNet judge.

    The pool's pixels are only shown, never encoded, so 16 grey levels suffice (the page scales
    them by 17), and they deflate far smaller than 8 bits.
    """
    idx = pool_index(len(x_test))
    levels = (x_test[idx].cpu().numpy() * 15).round().astype(np.uint8)
    return {"pool": {"index": idx.tolist(), "labels": b64(y_test[idx].cpu().numpy(), "u1"),
                     "levels": base64.b64encode(zlib.compress(levels.tobytes(), 9)).decode()},
            "classifier": classifier_weights(net)}


def lab_index(n_train, seed=0):
    """The training digits the page's lab trains on, in training-set order."""
    return np.sort(np.random.default_rng(seed).permutation(n_train)[:LAB])


def lab_data(x_train, y_train):
    """The lab's training digits at 16 grey levels (as the pool), deflated, with their labels."""
    idx = lab_index(len(x_train))
    levels = (x_train[idx].cpu().numpy() * 15).round().astype(np.uint8)
    return {"index": idx.tolist(), "labels": b64(y_train[idx].cpu().numpy(), "u1"),
            "levels": base64.b64encode(zlib.compress(levels.tobytes(), 9)).decode()}


def write(path, data):
    """``path`` as a script that files ``data`` under its key in ``window.LATENTLAB_DATA``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    path.write_text("// Written by the model's script for index.html; regenerated by every run.\n"
                    "window.LATENTLAB_DATA = window.LATENTLAB_DATA || {};\n"
                    f"window.LATENTLAB_DATA[{json.dumps(data['key'])}] = {text};\n", encoding="utf-8")


def write_shared(path, data):
    """``path`` (page/shared_data.js) as a script that sets ``window.LATENTLAB_SHARED``."""
    text = json.dumps(data, separators=(",", ":"))
    path.write_text("// Written by Models/train_classifier.py (--stats-only keeps the weights) for index.html.\n"
                    f"window.LATENTLAB_SHARED = {text};\n", encoding="utf-8")


def write_lab(path, data):
    """``path`` (page/lab_data.js) as a script that sets ``window.LATENTLAB_LAB``."""
    text = json.dumps(data, separators=(",", ":"))
    path.write_text("// Written by Models/train_classifier.py for index.html's lab; loaded when the lab is first used.\n"
                    f"window.LATENTLAB_LAB = {text};\n", encoding="utf-8")
