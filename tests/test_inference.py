"""Per-image variational inference (inference.py): q* is fitted by Adam through the reparameterisation trick with
the decoder frozen. Checked where the answer is known: for a decoder that ignores z, q* is the prior and both
gaps of Cremer et al. (2018) are closed forms (amortization = the encoder's KL, approximation = 0); for a trained
2-D VAE, ELBO(encoder) ≤ ELBO(q*) ≤ the exact log p(x), within the Monte Carlo error of their evaluation."""
import math

import torch

from conftest import small_trained_vae
from latentlab import exact
from latentlab.inference import elbo, fit_gaussian
from latentlab.models import build_model


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


def test_for_a_decoder_that_ignores_z_the_fit_finds_the_prior_and_both_gaps_are_closed_forms():
    model, x = blind_vae(), torch.rand(20, 784)
    log_px = model.log_likelihood(x, model.decoder[-1].bias.detach().expand(20, -1))
    mu, logvar = model.posterior(x)
    kl = 0.5 * (0.8 ** 2 + math.exp(-1.0) - 1 + 1.0) * 2
    with torch.no_grad():
        encoder = elbo(model, x, mu, logvar, samples=4)
    assert torch.allclose(encoder, log_px - kl, atol=1e-3)
    before = [p.clone() for p in model.parameters()]
    mu_star, logvar_star, trace = fit_gaussian(model, x, mu, logvar, steps=400, lr=0.05)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # the decoder stayed frozen
    with torch.no_grad():
        best = elbo(model, x, mu_star, logvar_star, samples=4)
    assert (best - encoder).mean() > kl - 1e-3 and torch.allclose(best, log_px, atol=1e-3)  # amortization = KL
    assert mu_star.abs().max() < 0.02 and logvar_star.abs().max() < 0.02             # approximation gap 0
    assert trace[-1] > trace[0]


def test_on_a_trained_2d_vae_the_fitted_q_lies_between_the_encoder_and_the_exact_likelihood():
    model, x = small_trained_vae(2, 5000, 40, 2)
    mu, logvar = model.posterior(x)
    mu_star, logvar_star, _ = fit_gaussian(model, x, mu, logvar, steps=200, lr=0.02)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():   # a deterministic evaluation: 2,000 draws an image, fixed noise
        encoder = elbo(model, x, *model.posterior(x), samples=2000, generator=gen)
        best = elbo(model, x, mu_star, logvar_star, samples=2000, generator=gen)
    log_px = torch.as_tensor(exact.exact_log_px(model, x), dtype=encoder.dtype)
    assert (best >= encoder - 0.05).all()              # q* is no worse than the encoder's q, image by image
    assert (best <= log_px + 0.05).all()               # and no ELBO passes log p(x)
    assert (best - encoder).mean() > 0.1               # the amortization gap of a briefly trained encoder
