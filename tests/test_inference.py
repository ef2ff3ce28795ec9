"""Per-image variational inference (inference.py): q* fitted by Adam through the reparameterisation trick with
the decoder frozen, checked where the answer is known in closed form:
- a decoder that ignores z: q* is the prior, so the approximation gap is 0 and the amortization gap is the
  encoder's KL to the prior;
- probabilistic PCA (a linear decoder with Gaussian noise, Tipping & Bishop, 1999): the true posterior is a
  Gaussian with a known covariance, so the full-covariance q* reaches log p(x) and the diagonal q* falls short
  by exactly KL(diagonal q* ‖ posterior) = ½ (Σ log Λ_jj − log det Λ), Λ the posterior precision;
- a trained 2-D VAE: ELBO(encoder) ≤ ELBO(q*) ≤ the exact log p(x), image by image, within the stated Monte
  Carlo error, and the metrics' two gaps add up to the inference gap."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal

from conftest import small_trained_vae
from latentlab import exact, inference, run_figures
from latentlab.metrics import inference_metrics
from latentlab.models import VAE, build_model


def fitted_elbo(model, x, family, steps=300, seed=0, draws=2000, prior=False):
    """(ELBO(q*) per image, its Monte Carlo error, q*): q of ``family`` fitted from the encoder's q."""
    q = inference.start(family, model, x, prior=prior, seed=seed)
    inference.fit(model, x, q, steps=steps, seed=seed)
    return (*inference.elbo_of(inference.evaluate(model, x, q, draws=draws)), q)


def blind_vae(mu=0.8, logvar=-1.0):
    """A 2-D VAE whose decoder ignores z (zero weights, random last bias) and whose encoder gives every image
    q = N(mu, exp(logvar)): log p(x) = log p(x|l) in closed form, and the best q is the prior."""
    torch.manual_seed(0)
    model = build_model("vae", 2, hidden=(16, 8)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder[-1].bias.copy_(torch.randn(784) * 4)
        model.encoder[-1].bias.copy_(torch.tensor([mu, mu, logvar, logvar]))
    return model


def test_for_a_decoder_that_ignores_z_both_gaps_are_closed_forms():
    model, x = blind_vae(), torch.rand(20, 784)
    log_px = model.log_likelihood(x, model.decoder[-1].bias.detach().expand(20, -1)).double().numpy()
    kl = 0.5 * (0.8 ** 2 + math.exp(-1.0) - 1 + 1.0) * 2          # KL(N(0.8, e^-1) ‖ N(0, 1)), two dimensions
    encoder, error = inference.elbo_of(inference.evaluate(model, x, inference.start("diagonal", model, x), draws=2000))
    assert np.abs(encoder - (log_px - kl)).max() < 4 * error.max()     # its Monte Carlo KL, within its error
    before = [p.clone() for p in model.parameters()]
    for family in inference.FAMILIES:
        best, error, q = fitted_elbo(model, x, family, steps=200, draws=1000)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # the decoder stayed frozen
        assert np.abs(best - log_px).max() < 0.05 and error.max() < 0.01, family  # approximation gap 0
        assert abs((best - encoder).mean() - kl) < 0.05, family                   # amortization gap = the KL


def ppca(d_x=5, sigma=0.5, seed=0):
    """Probabilistic PCA as a VAE: z ~ N(0, I) in 2-D, x = W z + b + σ·noise; its encoder is left untrained."""
    class GaussianNoise:   # p(x|z) = N(x; decoder(z), σ² I), with the likelihood interface the model calls
        def log_prob(self, x, mean):
            return Normal(mean, sigma).log_prob(x).sum(-1)
        fast_log_prob = log_prob
    torch.manual_seed(seed)
    model = VAE(nn.Linear(d_x, 4), nn.Linear(2, d_x), latent_dim=2).eval()
    model.likelihood = GaussianNoise()
    with torch.no_grad():
        model.decoder.weight.copy_(torch.tensor([[1.0, 0.9], [0.5, 0.6], [-0.7, -0.5], [1.1, 1.0], [0.3, 0.2]]))
        w, b = model.decoder.weight, model.decoder.bias
        x = (torch.randn(30, 2) @ w.T + b + sigma * torch.randn(30, d_x))
        precision = torch.eye(2) + w.T @ w / sigma ** 2                   # of the true posterior p(z|x)
        log_px = MultivariateNormal(b, w @ w.T + sigma ** 2 * torch.eye(d_x)).log_prob(x).double().numpy()
        shortfall = 0.5 * (precision.diagonal().log().sum() - torch.logdet(precision)).item()
    return model, x, log_px, shortfall


def test_probabilistic_pca_full_covariance_reaches_log_px_and_diagonal_falls_short_by_the_closed_form():
    model, x, log_px, shortfall = ppca()
    assert shortfall > 0.3                                            # a correlated posterior
    full, full_error, _ = fitted_elbo(model, x, "full", steps=500, draws=4000)
    diagonal, diag_error, _ = fitted_elbo(model, x, "diagonal", steps=500, draws=4000)
    assert np.abs(full - log_px).max() < 0.05                         # no approximation gap
    gap = log_px - diagonal                                           # the diagonal's: the closed form
    assert abs(gap.mean() - shortfall) < 0.02 and np.abs(gap - shortfall).max() < 0.1, (gap.mean(), shortfall)
    assert max(full_error.max(), diag_error.max()) < 0.03


@pytest.fixture(scope="module")
def trained():  # the two tests that use it are in the slow tier (~40 s together)
    """A briefly trained 2-D VAE (2 epochs on 5,000 digits), 40 test digits, their exact log p(x)."""
    model, x = small_trained_vae(2, 5000, 40, 2)
    return model, x, exact.exact_log_px(model, x)


@pytest.mark.slow
def test_on_a_trained_2d_vae_the_fitted_q_lies_between_the_encoder_and_the_exact_likelihood(trained):
    model, x, log_px = trained
    encoder, encoder_error = inference.elbo_of(inference.evaluate(model, x, inference.start("diagonal", model, x),
                                                                  draws=2000))
    best, best_error, _ = fitted_elbo(model, x, "diagonal")
    tolerance = 3 * np.hypot(encoder_error, best_error)           # three standard errors, image by image
    assert (best >= encoder - tolerance).all()                      # q* is no worse than the encoder's q
    assert (best <= log_px + 3 * best_error).all()                  # and no ELBO passes log p(x)
    assert (best - encoder).mean() > 0.1                            # the amortization gap of a young encoder


@pytest.mark.slow
def test_the_metrics_two_gaps_add_up_to_the_inference_gap_both_non_negative(trained, monkeypatch, tmp_path):
    model, x, log_px = trained
    monkeypatch.setattr(inference, "STUDY_IMAGES", 10)   # the study's families and K curve: fewer images
    m, vi = inference_metrics(model, x, exact_nll=-log_px)
    assert m["vi"]["images"] == 40
    assert m["approximation_gap"] + m["amortization_gap"] == pytest.approx(m["vi_inference_gap"], abs=1e-9)
    for gap in ("approximation_gap", "amortization_gap"):
        assert m[gap] > -3 * m[f"{gap}_error"], m
    for family in ("full", "flow"):   # a richer family closes at least part of the diagonal's gap
        assert m[f"approximation_gap_{family}"] <= m["approximation_gap_diagonal_study"] + 0.05
    assert m["vi_elbo_k0"] < m[f"vi_elbo_k{inference.STEPS}"] <= m["vi_log_px_study"] + 0.05
    run_figures.fitted_posteriors(model, x, np.zeros(len(x), int), vi, tmp_path / "fitted.png")  # the study's figure
    assert (tmp_path / "fitted.png").stat().st_size > 10_000
