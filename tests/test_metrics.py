import json
import math

import numpy as np
import pytest
import torch

from conftest import small_trained, small_trained_vae
from latentlab import exact
from latentlab.checkpoints import CLASSIFIER_PATH, load_classifier
from latentlab.data import load_mnist
from latentlab.metrics import (REFERENCE_STATS_PATH, active_units, class_entropy, classify, feature_stats,
                               frechet_distance, generate, iwae_bound, quality_metrics, reference_stats)
from latentlab.training import evaluate


@pytest.fixture(scope="module")
def small_vae():
    """A VAE trained briefly on 3,000 real digits, and 500 test digits to score."""
    return small_trained_vae(4, 3000, 500, epochs=2)


def test_iwae_bound_is_tighter_than_the_elbo(small_vae):
    model, x = small_vae
    elbo = np.mean([evaluate(model, x, seed=s)["loss"] for s in range(5)])
    iwae = iwae_bound(model, x, k=64)
    assert iwae < elbo - 0.1, (iwae, elbo)
    assert iwae_bound(model, x, k=256) <= iwae + 0.05  # more samples never loosen it (up to noise)


def test_iwae_with_one_sample_is_the_elbo_in_expectation(small_vae):
    model, x = small_vae
    k1 = [iwae_bound(model, x, k=1, seed=s) for s in range(20)]
    elbo = [evaluate(model, x, seed=100 + s)["loss"] for s in range(20)]
    se = math.sqrt(np.var(k1) / 20 + np.var(elbo) / 20)
    assert abs(np.mean(k1) - np.mean(elbo)) < 4 * se + 1e-3, (np.mean(k1), np.mean(elbo), se)


def test_frechet_distance_zero_on_itself_and_grows_with_noise():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(4000, 16)) @ rng.normal(size=(16, 16))
    stats = feature_stats(feats)
    assert abs(frechet_distance(stats, stats)) < 1e-6
    d = [frechet_distance(stats, feature_stats(feats + rng.normal(scale=s, size=feats.shape)))
         for s in (0.1, 0.5, 1.0)]
    assert 0 < d[0] < d[1] < d[2]
    shift = rng.normal(size=16)   # same covariance, moved mean: the distance is the squared shift
    assert frechet_distance(stats, (stats[0] + shift, stats[1])) == pytest.approx((shift ** 2).sum(), rel=1e-6)


def test_class_entropy_and_active_units():
    assert class_entropy(np.arange(1000) % 10) == pytest.approx(math.log(10))
    assert class_entropy(np.zeros(50, int)) == 0
    codes = np.stack([np.random.default_rng(0).normal(size=1000), np.full(1000, 3.0)], 1)
    assert active_units(codes) == 1
    assert active_units(np.tile([[0.5], [-0.5]], (50, 1)), threshold=0.25) == 0   # must exceed, not reach, it


def test_committed_classifier_scores_99_percent():
    info = json.loads(CLASSIFIER_PATH.with_suffix(".json").read_text())
    assert info["test_accuracy"] >= 0.99
    assert CLASSIFIER_PATH.stat().st_size <= 1_000_000
    d = load_mnist()
    probs, feats = classify(load_classifier("cpu"), d.x_test)
    assert feats.shape == (10_000, 84)
    assert (probs.argmax(1) == d.y_test.numpy()).mean() >= 0.99


def test_committed_reference_stats_belong_to_the_committed_classifier_and_test_set(monkeypatch):
    d = load_mnist()
    net = load_classifier("cpu")
    committed = reference_stats(net, d.x_test)
    assert np.array_equal(committed[1], np.load(REFERENCE_STATS_PATH)["cov"])  # the file, not a recount
    monkeypatch.setattr("latentlab.metrics.REFERENCE_STATS_PATH", REFERENCE_STATS_PATH.with_name("absent.npz"))
    fresh = reference_stats(net, d.x_test)
    assert np.allclose(committed[0], fresh[0], atol=1e-5) and np.allclose(committed[1], fresh[1], atol=1e-4)
    # used only for the exact test images it was made from: any other set is measured afresh
    monkeypatch.undo()
    other = reference_stats(net, d.x_test[:2000])
    assert not np.allclose(other[1], committed[1], atol=1e-3)


def _small_run(kind, latent_dim):
    """A model trained 2 epochs on 3,000 real digits, with 600 test digits (the exact likelihood's error
    is measured on the first 500) and everything ``quality_metrics`` takes: (model, data, evaluate's
    result, training codes)."""
    from latentlab.training import encode_all
    model, d = small_trained(kind, latent_dim, 3000, 600, epochs=2)
    return model, d, evaluate(model, d.x_test), encode_all(model, d.x_train).numpy()


@pytest.fixture(scope="module")
def vae2_metrics():
    model, d, test, train_codes = _small_run("vae", 2)
    m, extras = quality_metrics(model, d, test, train_codes, seed=3, lean=True)  # the error: its own test
    return model, d, test, m, extras


def test_the_2d_vae_metrics_keep_their_order_and_definitions(vae2_metrics):
    """−ELBO ≥ IWAE ≥ exact (up to Monte-Carlo error), the gaps are the differences of per-image
    bounds, and each figure is the quantity README defines, recounted here another way."""
    model, d, test, m, extras = vae2_metrics
    assert m["test_mse"] == test["mse"] and m["test_bce"] == test["bce"]
    assert m["test_neg_elbo"] == test["loss"] and m["test_neg_elbo"] == pytest.approx(m["test_rec"] + m["test_kl"])
    assert m["iwae_k"] == 100 and m["test_nll_iwae"] == pytest.approx(iwae_bound(model, d.x_test, seed=3), abs=1e-9)
    assert np.array_equal(extras["test_codes"], test["codes"].numpy())
    assert m["test_nll_exact"] < m["test_nll_iwae"] + 0.05 < m["test_neg_elbo"]
    per = extras["per_image"]
    assert per["nll"].shape == per["elbo"].shape == per["iwae"].shape == (600,)
    assert m["test_nll_exact"] == pytest.approx(per["nll"].mean())
    assert m["test_nll_iwae"] == pytest.approx(per["iwae"].mean())
    assert m["test_inference_gap"] == pytest.approx((per["elbo"] - per["nll"]).mean())
    assert m["test_iwae_gap"] == pytest.approx((per["iwae"] - per["nll"]).mean())
    assert 0 < m["test_iwae_gap"] < m["test_inference_gap"]
    assert (per["elbo"] >= per["iwae"] - 1e-4).all()   # Jensen, per image: mean of -log w ≥ -log mean w
    assert "nll_exact_error" not in m   # lean: a sweep's metrics-only run
    assert m["nll_exact_grid"]["step"] == 0.02 and m["nll_exact_grid"]["range"] == 6.0
    assert m["nll_exact_grid"]["ring_share"] < exact.RING_SHARE
    # kNN accuracy: a recount with plain numpy (5 nearest training codes, majority vote)
    codes = test["codes"].numpy()
    dist = ((codes[:, None, :] - extras["train_codes"][None]) ** 2).sum(-1)
    votes = d.y_train.numpy()[np.argsort(dist, 1)[:, :5]]
    assert m["knn_accuracy"] == pytest.approx((np.array([np.bincount(v, minlength=10).argmax() for v in votes])
                                               == d.y_test.numpy()).mean(), abs=0.003)  # k = 6: 0.004 off
    assert 0.2 < m["knn_accuracy"] <= 1  # chance: 0.1
    kl = extras["kl_per_dim"]
    assert kl.shape == (2,) and (kl > 0).all() and kl.sum() == pytest.approx(m["test_kl"], rel=0.02)
    assert m["active_units"] == int((codes.var(0) > 0.01).sum())


@pytest.mark.slow  # three quadratures of 500 digits
def test_the_exact_likelihoods_error_is_measured_on_its_first_500_images(vae2_metrics):
    from latentlab.metrics import exact_metrics
    model, d, _, m, extras = vae2_metrics
    per = extras["per_image"]
    full, _ = exact_metrics(model, d.x_test, per["iwae"], per["elbo"], measure_error=True)
    assert all(full[k] == m[k] for k in full if k != "nll_exact_error")
    # ~2e-6 for this broad posterior; a mean over 501 images against 500 would be off by ~Δnll/501
    assert 0 <= full["nll_exact_error"] < 1e-4


@pytest.mark.slow  # all of a full run's metrics again
def test_a_full_run_measures_the_exact_likelihoods_error_and_a_lean_one_does_not(vae2_metrics, monkeypatch):
    from latentlab import exact
    model, d, test, _, extras = vae2_metrics
    calls = []
    monkeypatch.setattr(exact, "error_bound", lambda model, x, **kw: calls.append(len(x)) or (0.125, 0.0))
    full, _ = quality_metrics(model, d, test, extras["train_codes"], seed=3, lean=False)
    assert full["nll_exact_error"] == 0.125 and calls == [500]


def test_sample_metrics_count_what_the_classifier_says(vae2_metrics):
    model, d, test, m, extras = vae2_metrics
    samples = extras["samples"]
    assert samples.shape == (10_000, 784) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    # the same prior samples again: generation is seeded
    assert torch.equal(samples, generate(model, 10_000, seed=3))
    net = load_classifier("cpu")
    probs, _ = classify(net, samples)
    assert m["sample_confidence"] == pytest.approx(probs.max(1).mean())
    assert m["sample_class_entropy"] == pytest.approx(class_entropy(probs.argmax(1)))
    recon, _ = classify(net, torch.sigmoid(model.decode(test["codes"])))
    assert m["recon_accuracy"] == pytest.approx((recon.argmax(1) == d.y_test.numpy()).mean())
    assert m["fid_mnist"] > 1
    # another seed gives other samples, hence another FID: the seed reaches the sampler
    assert not torch.equal(samples[:10], generate(model, 10, seed=1))
    assert np.array_equal(extras["test_codes"], test["codes"].numpy())


def _decoded_codes(model):
    """The codes ``generate`` hands to the decoder."""
    seen, real = [], model.decode
    model.decode = lambda z, y=None: seen.append(z) or real(z, y)
    try:
        generate(model, 20_000, seed=0)
    finally:
        del model.decode
    return seen[0].double().numpy()


def test_the_ae_metrics_fit_a_density_and_sample_from_it():
    model, d, test, train_codes = _small_run("ae", 2)
    m, extras = quality_metrics(model, d, test, train_codes, seed=3)
    assert "test_neg_elbo" not in m and "active_units" not in m and extras["kl_per_dim"] is None
    assert m["test_mse"] == test["mse"] and 0 < m["test_mse"] < 0.1
    gmm = model.code_density
    # the settings AutoEncoder.fit_prior documents: full covariances, a floor of 1e-4 on them, EM's tolerance 0.01
    assert gmm.get_params() | {"n_components": 10, "covariance_type": "full", "reg_covar": 1e-4, "tol": 1e-2,
                               "random_state": 3} == gmm.get_params()
    assert torch.equal(extras["samples"], generate(model, 10_000, seed=3))
    assert m["gmm_test_loglik"] == pytest.approx(gmm.score(test["codes"].numpy()))
    # the codes decoded into samples follow the mixture: its mean and covariance, within sampling error
    z = _decoded_codes(model)
    mean = gmm.weights_ @ gmm.means_
    second = np.einsum("k,kij->ij", gmm.weights_, gmm.covariances_ + np.einsum("ki,kj->kij", gmm.means_, gmm.means_))
    cov = second - np.outer(mean, mean)
    se = np.sqrt(np.diag(cov) / len(z))
    assert (np.abs(z.mean(0) - mean) < 5 * se).all(), (z.mean(0), mean)
    assert np.allclose(np.cov(z, rowvar=False), cov, rtol=0.05, atol=0.05 * np.diag(cov).max())


def test_the_vae_samples_decode_prior_draws(vae2_metrics):
    z = _decoded_codes(vae2_metrics[0])
    assert z.shape == (20_000, 2)
    assert np.abs(z.mean(0)).max() < 5 / np.sqrt(len(z))
    assert np.abs(np.cov(z, rowvar=False) - np.eye(2)).max() < 0.04
