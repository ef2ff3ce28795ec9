"""Everything written to ``metrics.json``: reconstruction error, likelihood bounds, latent-space
structure and sample quality, each on the full 10,000-image test set.
"""
import hashlib
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from . import exact, inference
from .checkpoints import CLASSIFIER_PATH, load_classifier
from .losses import gaussian_kl

REFERENCE_STATS_PATH = Path(__file__).with_name("lenet_mnist_test_stats.npz")
IWAE_K = 100
GENERATED = 10_000
# The comparison table (README and the page): (key in metrics.json, column title, format, better)
TABLE_COLUMNS = [
    ("test_mse", "MSE test", "{:.4f}", "low"),
    ("test_bce", "BCE (nats)", "{:.1f}", "low"),
    ("test_neg_elbo", "−ELBO (nats)", "{:.1f}", "low"),
    ("test_nll_iwae", "IWAE NLL (nats)", "{:.1f}", "low"),
    ("test_nll_exact", "exact NLL (nats)", "{:.1f}", "low"),
    ("approximation_gap", "approx. gap (nats)", "{:.2f}", "low"),
    ("amortization_gap", "amort. gap (nats)", "{:.2f}", "low"),
    ("knn_accuracy", "kNN acc.", "{:.3f}", "high"),
    ("recon_accuracy", "recon acc.", "{:.3f}", "high"),
    ("sample_confidence", "sample conf.", "{:.3f}", "high"),
    ("sample_class_entropy", "class entropy (ln10=2.303)", "{:.3f}", "high"),
    ("fid_mnist", "FID-MNIST", "{:.1f}", "low"),
    ("active_units", "active units", "{:d}", None),
    ("train_seconds", "train s", "{:.0f}", "low"),
    ("run_seconds", "run s", "{:.0f}", "low"),
]


def table_cells(record):
    """One row of the comparison table: each column's value as printed, "—" where the model has none."""
    return [fmt.format(record[key]) if key in record else "—" for key, _, fmt, _ in TABLE_COLUMNS]


def knn_accuracy(train_codes, y_train, test_codes, y_test, k=5):
    """Accuracy of a k-nearest-neighbour classifier fit on training codes: how well digits separate."""
    knn = KNeighborsClassifier(n_neighbors=k).fit(train_codes, y_train)
    return float(knn.score(test_codes, y_test))


@torch.no_grad()
def iwae_bound(model, x, k=IWAE_K, seed=0, batch_size=20, per_image=False, y=None):  # 2000-row chunks, for speed
    """Mean importance-weighted bound on -log p(x) in nats (Burda, Grosse & Salakhutdinov, 2015).

    -log p(x) <= -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (``model.log_weights``); with
    k = 1 this is the one-sample negative ELBO, and it tightens as k grows. ``per_image``: instead, per
    image (numpy), the bound and the k-sample estimate of the negative ELBO (the mean of -log w over the
    same samples). ``y``: the labels of ``x``, for a conditional model.
    """
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    bounds, elbos = [], []
    for start in range(0, x.shape[0], batch_size):
        yb = None if y is None else y[start:start + batch_size]
        log_w = model.log_weights(x[start:start + batch_size], k, gen, yb)
        bound = -(torch.logsumexp(log_w, dim=0) - math.log(k)).double()
        total += bound.sum()
        if per_image:
            bounds.append(bound.cpu())
            elbos.append(-log_w.double().mean(0).cpu())
    if per_image:
        return torch.cat(bounds).numpy(), torch.cat(elbos).numpy()
    return float(total / x.shape[0])


def exact_metrics(model, x, iwae, elbo, measure_error=True, y=None, error_images=500):
    """The 2-D VAE's exact -log p(x) (``exact``), its quadrature error measured on the first
    ``error_images`` images, and the two gaps to the per-image bounds ``iwae`` and ``elbo``
    (``iwae_bound(per_image=True)``); returns (metrics, per-image arrays for the figures).
    ``measure_error``: False skips the error measurement, as sweeps' metrics-only runs do. A conditional
    model's -log p(x|y) is summed digit by digit, on a grid decoded under each label (``y``: the labels)."""
    labels = range(model.condition_size) if model.conditional else [None]
    nll, half_range, error, ring = np.empty(len(x)), np.empty(len(x)), 0.0, 0.0
    for c in labels:
        idx = np.arange(len(x)) if c is None else np.flatnonzero(y.cpu().numpy() == c)
        if len(idx) == 0:
            continue
        hr, chosen, ring_share = exact.widened_grid(model, x[idx], label=c)
        half_range[idx], ring = hr, max(ring, ring_share)
        nll[idx] = -exact.exact_log_px(model, x[idx], half_range=hr, chosen=chosen, label=c)
        first = idx[idx < error_images]
        if measure_error and len(first):  # each label's share of the error of the mean over the first images
            error += len(first) / min(error_images, len(x)) * max(exact.error_bound(
                model, x[first], half_range=hr, base=-nll[first], label=c))
    m = {"test_nll_exact": float(nll.mean()),
         # ring_share: the posterior mass on the grid's outer ring (< 0.001 unless the widest range was too narrow)
         "nll_exact_grid": {"step": exact.STEP, "range": float(half_range.max()), "ring_share": ring},
         # Cremer, Li & Duvenaud (2018): -ELBO - log p(x) is the mean KL(q(z|x) || p(z|x))
         "test_inference_gap": float((elbo - nll).mean()), "test_iwae_gap": float((iwae - nll).mean())}
    if measure_error:
        m["nll_exact_error"] = error
    return m, {"nll": nll, "elbo": elbo, "iwae": iwae, "half_range": half_range}


def _mean_error(errors):
    """The standard error of a mean over images from each image's own (independent) standard error."""
    return float(np.sqrt(np.sum(np.square(errors))) / len(errors))


def inference_metrics(model, x, y=None, exact_nll=None, seed=0, images=inference.IMAGES):
    """The inference gap split in two (Cremer, Li & Duvenaud, 2018) on the first ``images`` of ``x``:
    the approximation gap log p(x) − ELBO(q*) and the amortization gap ELBO(q*) − ELBO(q_encoder), q* each
    image's own diagonal Gaussian fitted by ``inference.fit``. log p(x): the exact one (``exact_nll``, at 2-D),
    else IWAE with k = ``inference.IWAE_K`` and q* as proposal, with its standard error. Then, on the first
    ``STUDY_IMAGES`` (when there are that many): the ELBO after K steps from the encoder's q (semi-amortized
    refinement, Kim et al., 2018), the fit started from the prior, and at 2-D the richer families'
    approximation gaps. Returns (metrics, per-image arrays and the fitted q's for the figures)."""
    n = min(images, len(x))
    study = inference.STUDY_IMAGES if n >= inference.STUDY_IMAGES else 0   # a quick check's few images: no study
    xs, ys = x[:n], None if y is None else y[:n]
    evaluate = partial(inference.evaluate, model, seed=seed + 1)   # the same fixed noise for every q
    q = inference.start("diagonal", model, xs, ys)
    encoder, encoder_error = inference.elbo_of(evaluate(xs, q, y=ys))
    trace = inference.fit(model, xs, q, seed=seed, y=ys)
    if exact_nll is not None:
        best, best_error = inference.elbo_of(evaluate(xs, q, y=ys))
        log_px, log_px_error = -exact_nll[:n], np.zeros(n)   # the quadrature's own error: nll_exact_error
    else:
        log_w = evaluate(xs, q, draws=inference.IWAE_K, y=ys)
        best, best_error = inference.elbo_of(log_w)
        log_px, log_px_error = inference.iwae_of(log_w)
    m = {"approximation_gap": float((log_px - best).mean()), "amortization_gap": float((best - encoder).mean()),
         # a few digits whose true posterior has two distant modes weigh on the means: the medians too
         "approximation_gap_median": float(np.median(log_px - best)),
         "amortization_gap_median": float(np.median(best - encoder)),
         "vi_inference_gap": float((log_px - encoder).mean()),
         # how far the first n images' mean gap may lie from the whole test set's (sampling, not Monte Carlo)
         "vi_inference_gap_sampling_error": float((log_px - encoder).std(ddof=1) / np.sqrt(n) * np.sqrt(1 - n / len(x))),
         # Monte Carlo standard errors of the three means (the images' draws are independent)
         "approximation_gap_error": _mean_error(np.hypot(log_px_error, best_error)),
         "amortization_gap_error": _mean_error(np.hypot(best_error, encoder_error)),
         "vi_last_gain": inference.last_gain(trace)}
    if exact_nll is None:
        m["vi_log_px"], m["vi_log_px_error"] = float(log_px.mean()), _mean_error(log_px_error)
        # the estimate with a tenth of the draws: how much k still moves it (IWAE is biased low)
        m["vi_log_px_k_tenth"] = float(inference.iwae_of(log_w[:inference.IWAE_K // 10])[0].mean())
    fitted = {"diagonal": q}
    if study:
        m.update(_inference_study(model, xs[:study], None if ys is None else ys[:study], best[:study],
                                  log_px[:study], exact_nll is not None, evaluate, fitted, seed))
    m["vi"] = {"images": n, "study_images": study, "steps": inference.STEPS,
               "lr": {f: inference.FAMILIES[f].lr for f in fitted},
               "samples": inference.SAMPLES, "eval_samples": inference.EVAL_SAMPLES,
               "log_px": "exact" if exact_nll is not None else f"iwae k={inference.IWAE_K}, q* proposal"}
    return m, {"encoder_elbo": encoder, "fitted_elbo": best, "log_px": log_px, "fitted": fitted}


def _inference_study(model, xt, yt, best, log_px, exact, evaluate, fitted, seed):
    """``inference_metrics``' study on its first images ``xt``: the ELBO after K steps from the encoder's q; at
    2-D (``exact``) the fit from the prior and the richer families (added to ``fitted``). ``best``, ``log_px``:
    the diagonal q*'s ELBO and log p(x) of these images."""
    m = {}
    for k in inference.K_STEPS:   # K steps of the fit from the encoder's q, each with its own cosine schedule
        qk = inference.start("diagonal", model, xt, yt)
        inference.fit(model, xt, qk, steps=k, seed=seed, y=yt)
        m[f"vi_elbo_k{k}"] = float(inference.elbo_of(evaluate(xt, qk, y=yt))[0].mean())
    m[f"vi_elbo_k{inference.STEPS}"], m["vi_log_px_study"] = float(best.mean()), float(log_px.mean())
    if not exact:
        return m
    prior_q = inference.start("diagonal", model, xt, yt, prior=True)
    inference.fit(model, xt, prior_q, seed=seed, y=yt)
    from_prior = inference.elbo_of(evaluate(xt, prior_q, y=yt))[0] - best
    m["vi_prior_start_difference"] = float(from_prior.mean())
    m["vi_prior_start_worse"] = float((from_prior < -0.5).mean())   # ended in a worse optimum
    for family in ("full", "flow"):
        fitted[family] = inference.start(family, model, xt, yt, seed=seed)
        inference.fit(model, xt, fitted[family], seed=seed, y=yt)
        elbo = inference.elbo_of(evaluate(xt, fitted[family], y=yt))[0]
        m[f"approximation_gap_{family}"] = float((log_px - elbo).mean())
        m[f"approximation_gap_{family}_median"] = float(np.median(log_px - elbo))
    m["approximation_gap_diagonal_study"] = float((log_px - best).mean())
    m["approximation_gap_diagonal_study_median"] = float(np.median(log_px - best))
    return m


@torch.no_grad()
def kl_per_dimension(model, x, y=None):
    """Mean KL(q(z_j|x) || N(0,1)) of each latent dimension over ``x``, in nats."""
    mu, logvar = model.posterior(x, y)
    return gaussian_kl(mu, logvar).mean(0).cpu().numpy()


def active_units(codes, threshold=0.01):
    """Burda et al. (2015): dimension j is active if Cov_x(E_q[z_j|x]) exceeds ``threshold``."""
    return int((np.var(codes, axis=0) > threshold).sum())


@torch.no_grad()
def classify(net, images, batch_size=200):
    """(softmax probabilities, 84-d penultimate features) of images in [0, 1], flattened."""
    probs, feats = [], []
    for start in range(0, images.shape[0], batch_size):
        f = net.features(images[start:start + batch_size])
        feats.append(f)
        probs.append(torch.softmax(net.head(f), dim=1))
    return torch.cat(probs).cpu().numpy(), torch.cat(feats).double().cpu().numpy()


def feature_stats(feats):
    """(mean, covariance) of feature rows: all the Fréchet distance needs of one side."""
    return feats.mean(0), np.cov(feats, rowvar=False)


def _reference_key(x_test):
    digest = hashlib.sha256(CLASSIFIER_PATH.read_bytes())
    digest.update(x_test.cpu().numpy().tobytes())
    return digest.hexdigest()


def save_reference_stats(net, x_test):
    """Commit the test digits' feature statistics beside the classifier, as pytorch-fid does."""
    _, feats = classify(net, x_test)
    mean, cov = feature_stats(feats)
    np.savez(REFERENCE_STATS_PATH, key=_reference_key(x_test), mean=mean, cov=cov)


def reference_stats(net, x_test):
    """Feature statistics of the test digits, FID's real side: the committed ones when they were
    made from these very weights and test images (checked by hash), else computed now."""
    if REFERENCE_STATS_PATH.exists():
        saved = np.load(REFERENCE_STATS_PATH)
        if str(saved["key"]) == _reference_key(x_test):
            return saved["mean"], saved["cov"]
    return feature_stats(classify(net, x_test)[1])


def frechet_distance(stats_a, stats_b):
    """||m_a - m_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the FID formula (Heusel et al., 2017),
    between two (mean, covariance) pairs from ``feature_stats``.

    Tr((S_a S_b)^(1/2)) is taken as the sum of square roots of the eigenvalues of the symmetric
    S_a^(1/2) S_b S_a^(1/2), which stays real and stable when ReLU features leave the covariances
    singular (scipy's sqrtm warns and drifts there).
    """
    (mu_a, s_a), (mu_b, s_b) = stats_a, stats_b
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b)
                 - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def class_entropy(predictions, classes=10):
    """Entropy (nats) of the histogram of predicted classes; ln 10 = every digit equally often."""
    p = np.bincount(predictions, minlength=classes) / len(predictions)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@torch.no_grad()
def generate(model, n, seed=0):
    """``n`` generated images: codes from the model's prior (an autoencoder's is fitted after training), decoded."""
    return model.generate(n, seed)


@torch.no_grad()
def quality_metrics(model, data, test, train_codes, seed=0, lean=False, vi_images=None):
    """Every metric after training; ``test`` is ``training.evaluate`` on the test set. ``lean`` (a
    sweep's metrics-only run): the exact likelihood's error is not measured again. ``vi_images``: the test
    images of ``inference_metrics`` (0: skipped; None: a tenth of the test set, as quick checks on a part of
    it stay quick). Fits the model's prior first where it has to be fitted (an autoencoder's).

    Returns (metrics dict, extras for the figures: codes as numpy, generated images, ...).
    """
    test_codes = test["codes"].cpu().numpy()
    y_train, y_test = data.y_train.cpu().numpy(), data.y_test.cpu().numpy()
    m = {"test_mse": test["mse"], "test_bce": test["bce"],
         "knn_accuracy": knn_accuracy(train_codes, y_train, test_codes, y_test)}
    model.fit_prior(train_codes, seed)
    kl_dims = per_image = None
    if model.variational:
        m["test_neg_elbo"], m["test_rec"], m["test_kl"] = test["loss"], test["rec"], test["kl"]
        iwae, elbo = iwae_bound(model, data.x_test, seed=seed, per_image=True, y=data.y_test)
        m["test_nll_iwae"], m["iwae_k"] = float(iwae.mean()), IWAE_K
        exact_nll = None
        if model.latent_dim == 2:
            exact_m, per_image = exact_metrics(model, data.x_test, iwae, elbo, not lean, data.y_test)
            m.update(exact_m)
            exact_nll = per_image["nll"]
        vi_images = len(data.x_test) // 10 if vi_images is None else vi_images
        if vi_images:
            began = time.perf_counter()
            vi_m, vi_extras = inference_metrics(model, data.x_test, data.y_test, exact_nll, seed, vi_images)
            m.update(vi_m, vi_seconds=round(time.perf_counter() - began, 2))   # what the per-image VI adds to a run
            per_image = {**(per_image or {}), "vi": vi_extras}
        m["active_units"] = active_units(test_codes)
        kl_dims = kl_per_dimension(model, data.x_test, data.y_test)
    else:
        m["gmm_test_loglik"] = float(model.code_density.score(test_codes))
    samples = generate(model, GENERATED, seed)
    if CLASSIFIER_PATH.exists():
        net = load_classifier(data.x_test.device)
        recon_probs, _ = classify(net, model.image(test["codes"], data.y_test))
        sample_probs, sample_feats = classify(net, samples)
        m["recon_accuracy"] = float((recon_probs.argmax(1) == y_test).mean())
        m["sample_confidence"] = float(sample_probs.max(1).mean())
        m["sample_class_entropy"] = class_entropy(sample_probs.argmax(1))
        m["fid_mnist"] = frechet_distance(feature_stats(sample_feats), reference_stats(net, data.x_test))
    extras = {"test_codes": test_codes, "train_codes": train_codes, "samples": samples,
              "kl_per_dim": kl_dims, "per_image": per_image}
    return m, extras
