import json
import math

import numpy as np
import pytest
import torch

from conftest import small_trained_vae
from latentlab.checkpoints import CLASSIFIER_PATH, load_classifier
from latentlab.data import load_mnist
from latentlab.metrics import (REFERENCE_STATS_PATH, active_units, class_entropy, classify, feature_stats,
                               frechet_distance, iwae_bound, reference_stats)
from latentlab.losses import softplus_sum
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


def test_softplus_sum_matches_float64_softplus_even_for_extreme_logits():
    torch.manual_seed(0)
    logits = torch.randn(3, 500, 784) * 6
    logits[0, 0] = 80.0     # saturated pixels: softplus(l) = l
    logits[0, 1] = -80.0    # softplus(l) = e^l, far below float32's 1 + eps
    logits[0, 2, ::2] = 0.0
    exact = torch.nn.functional.softplus(logits.double()).sum(-1)
    fast = softplus_sum(logits.clone()).double()
    assert fast.shape == (3, 500)
    assert torch.allclose(fast, exact, rtol=1e-6, atol=1e-3), (fast - exact).abs().max()
    assert abs(float((fast - exact).mean())) < 1e-5  # no bias that 10,000 images would add up


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


def test_class_entropy_and_active_units():
    assert class_entropy(np.arange(1000) % 10) == pytest.approx(math.log(10))
    assert class_entropy(np.zeros(50, int)) == 0
    codes = np.stack([np.random.default_rng(0).normal(size=1000), np.full(1000, 3.0)], 1)
    assert active_units(codes) == 1


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
