"""The one likelihood p(x|z) (likelihoods.py): each choice is a normalised density where it claims to be,
its fast form equals its plain one, and training, −ELBO, IWAE and the exact 2-D likelihood all follow it:
for a decoder that ignores z, all of them equal the likelihood's own closed form."""
import math

import numpy as np
import pytest
import torch

from latentlab import exact
from latentlab.likelihoods import NAMES, PixelLikelihood, softplus_sum
from latentlab.metrics import iwae_bound
from latentlab.models import build_model
from latentlab.precision import autocast
from latentlab.training import evaluate

EXTREME = torch.tensor([-120.0, -40.0, -15.0, -3.0, -1e-3, 0.0, 2e-3, 0.7, 9.0, 16.5, 40.0, 120.0])


def closed_form_log_normalizer(logits, name):
    """A(l) in float64 from its definition: log(1 + e^l), or log((e^l − 1) / l) (1 at l = 0: A = 0)."""
    l = np.asarray(logits, dtype=np.float64)
    if name == "bernoulli":
        return np.logaddexp(0, l)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(l > 0, l + np.log(-np.expm1(-l)) - np.log(np.abs(l)), np.log(-np.expm1(l)) - np.log(np.abs(l)))
    return np.where(l == 0, 0.0, a)


def test_softplus_sum_matches_float64_softplus_even_for_extreme_logits():
    torch.manual_seed(0)
    logits = torch.randn(3, 500, 784) * 6
    logits[0, 0] = 80.0     # saturated pixels: softplus(l) = l
    logits[0, 1] = -80.0    # softplus(l) = e^l, far below float32's 1 + eps
    logits[0, 2, ::2] = 0.0
    exact_value = torch.nn.functional.softplus(logits.double()).sum(-1)
    fast = softplus_sum(logits.clone()).double()
    assert fast.shape == (3, 500)
    assert torch.allclose(fast, exact_value, rtol=1e-6, atol=1e-3), (fast - exact_value).abs().max()
    assert abs(float((fast - exact_value).mean())) < 1e-5  # no bias that 10,000 images would add up


def test_the_continuous_bernoulli_is_a_density_on_the_unit_interval_for_any_logit():
    """∫₀¹ p(x|l) dx = 1 and ∫₀¹ x p(x|l) dx = mean, by a fine midpoint rule in float64, from l = −120 to 120:
    torch's own ContinuousBernoulli clamps its probabilities, so its mean stops at 0.937 past |l| = 15.9."""
    cb = PixelLikelihood("continuous-bernoulli")
    x = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000
    for l in EXTREME.tolist():
        logits = torch.full((1, len(x)), l, dtype=torch.float64)
        density = torch.exp(cb.pixels(logits).log_prob(x[None]))[0]
        assert float(density.mean()) == pytest.approx(1.0, abs=2e-3 if abs(l) > 50 else 1e-6), l
        mean = float(cb.mean(logits[:, :1]))
        assert float((x * density).mean()) == pytest.approx(mean, abs=1e-4), l
    assert float(cb.mean(torch.tensor([[40.0]]))) == pytest.approx(1 - 1 / 40, abs=1e-6)
    assert float(torch.distributions.ContinuousBernoulli(logits=torch.tensor(40.0)).mean) < 0.94


@pytest.mark.parametrize("name", NAMES)
def test_each_likelihood_is_x_dot_logit_minus_its_closed_form_normaliser(name):
    """log p(x|z) = Σ x·l − A(l): the plain form (torch.distributions) and the fast form against A's
    definition in float64, at logits from −120 to 120 and grey levels in [0, 1]."""
    lik = PixelLikelihood(name)
    torch.manual_seed(1)
    logits = torch.cat([EXTREME.repeat(40), torch.randn(304) * 8]).view(1, 784).repeat(5, 1)
    x = torch.rand(5, 784)
    x[0] = (x[0] > 0.5).float()
    want = (x.double() * logits.double()).sum(-1) - torch.from_numpy(closed_form_log_normalizer(logits, name)).sum(-1)
    assert torch.allclose(lik.log_prob(x, logits).double(), want, rtol=1e-6, atol=2e-3)
    assert torch.allclose(lik.fast_log_prob(x, logits).double(), want, rtol=1e-6, atol=2e-3)
    assert lik.log_prob(x, logits).shape == (5,)


def test_the_continuous_bernoulli_gradient_is_finite_everywhere():
    lik = PixelLikelihood("continuous-bernoulli")
    logits = EXTREME.clone().view(1, -1).requires_grad_()
    lik.log_prob(torch.full((1, len(EXTREME)), 0.3), logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # dA/dl is the mean: the gradient of x·l − A(l) is x − E[x]
    assert torch.allclose(logits.grad, 0.3 - lik.mean(logits.detach()), atol=1e-4)


def blind_vae(name, latent_dim=2, mu=0.0, logvar=0.0, seed=0):
    """A VAE whose decoder ignores z (its weights are zero: the logits are the last bias) and whose
    encoder returns the same q for every image; p(x) is then p(x|l) in closed form."""
    torch.manual_seed(seed)
    model = build_model("vae", latent_dim, hidden=(16, 8), likelihood=name).eval()
    with torch.no_grad():
        for net in (model.encoder, model.decoder):
            for p in net.parameters():
                p.zero_()
        model.decoder[-1].bias.copy_(torch.randn(784) * 4)
        model.encoder[-1].bias.copy_(torch.tensor([mu] * latent_dim + [logvar] * latent_dim))
    return model


@pytest.mark.parametrize("name", NAMES)
def test_for_a_decoder_that_ignores_z_elbo_iwae_and_quadrature_are_the_closed_form(name):
    torch.manual_seed(2)
    x = torch.rand(40, 784)
    model = blind_vae(name)
    logits = model.decoder[-1].bias.detach().double()
    log_px = (x.double() @ logits) - closed_form_log_normalizer(logits, name).sum()
    want = float(-log_px.mean())
    # q = the prior: every bound is tight
    assert evaluate(model, x)["loss"] == pytest.approx(want, abs=1e-3)
    assert iwae_bound(model, x, k=50) == pytest.approx(want, abs=1e-3)
    assert float(-exact.exact_log_px(model, x).mean()) == pytest.approx(want, abs=1e-3)
    # q elsewhere: −ELBO = −log p(x) + KL(q ‖ p), the KL in closed form; the quadrature does not see q
    model = blind_vae(name, mu=0.8, logvar=-1.0)
    kl = 0.5 * (0.8 ** 2 + math.exp(-1.0) - 1 + 1.0) * 2
    result = evaluate(model, x)
    assert result["kl"] == pytest.approx(kl, rel=1e-5)
    assert result["loss"] == pytest.approx(want + kl, abs=1e-3)
    assert want <= iwae_bound(model, x, k=50) + 1e-3 < want + kl
    assert float(-exact.exact_log_px(model, x).mean()) == pytest.approx(want, abs=1e-3)


def test_the_two_likelihoods_score_the_same_decoder_differently():
    torch.manual_seed(3)
    x = torch.rand(40, 784)
    scores = [evaluate(blind_vae(name), x)["loss"] for name in NAMES]
    assert abs(scores[0] - scores[1]) > 100   # grey pixels: the continuous Bernoulli's density is far higher


def test_bfloat16_layers_hand_float32_to_the_loss_and_score_like_float32():
    """precision.autocast: the layers in bfloat16, the latent, the KL and log p(x|z) in float32."""
    torch.manual_seed(4)
    model, x = build_model("vae", 8), torch.rand(64, 784)
    with autocast(model, torch.bfloat16):
        mu, logvar = model.posterior(x)
        logits = model.decode(mu)
        loss, rec, kl = model.loss(x, generator=torch.Generator().manual_seed(0))
    assert mu.dtype == logvar.dtype == logits.dtype == loss.dtype == torch.float32
    full = model.loss(x, generator=torch.Generator().manual_seed(0))
    assert float(loss.detach()) == pytest.approx(float(full[0].detach()), rel=1e-2)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    assert not model.encoder._forward_hooks and not model.decoder._forward_hooks   # removed on the way out
