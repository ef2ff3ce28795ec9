import math

import torch

from latentlab.likelihoods import PixelLikelihood
from latentlab.losses import ae_loss, gaussian_kl, reconstruction_loss, vae_loss


def test_the_bernoulli_reconstruction_loss_is_the_hand_computed_cross_entropy():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    x = torch.tensor([[0.5, 1.0, 0.2]])
    p = torch.sigmoid(logits)
    hand = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert torch.allclose(reconstruction_loss(logits, x), hand.reshape(1), atol=1e-6)
    # p = 0.5 at logit 0: each pixel costs ln 2 whatever its target
    assert math.isclose(float(reconstruction_loss(torch.zeros(1, 784), torch.rand(1, 784))),
                        784 * math.log(2), rel_tol=1e-5)


def test_the_bernoulli_loss_gradient_is_sigmoid_minus_x():
    torch.manual_seed(3)
    x = torch.rand(64, 784)
    logits = (torch.randn(64, 784) * 5).requires_grad_()
    reconstruction_loss(logits, x).sum().backward()
    assert torch.allclose(logits.grad, torch.sigmoid(logits.detach()) - x, atol=1e-6)


def test_the_loss_follows_the_likelihood_it_is_given():
    """The continuous Bernoulli adds its log-normaliser's correction: at logit 0 it is the uniform density
    on [0, 1], log p = 0, where the Bernoulli scores ln 2 a pixel."""
    x = torch.rand(2, 784)
    cb = PixelLikelihood("continuous-bernoulli")
    assert torch.allclose(reconstruction_loss(torch.zeros(2, 784), x, cb), torch.zeros(2), atol=1e-4)
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    assert float(vae_loss(torch.zeros(2, 784), x, mu, logvar, likelihood=cb)[1]) == 0.0
    assert float(ae_loss(torch.zeros(2, 784), x, cb)[0]) == 0.0


def test_the_kl_and_its_weight_are_differentiated_by_autograd():
    """d(β·KL)/dmu = β·mu and d(β·KL)/dlogvar = β·(exp(logvar) - 1)/2, per image, batch-averaged."""
    torch.manual_seed(0)
    mu, logvar = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    logits, x = torch.zeros(8, 784), torch.rand(8, 784)
    loss, _, _ = vae_loss(logits, x, mu, logvar, beta=0.3)
    loss.backward()
    assert torch.allclose(mu.grad, 0.3 * mu.detach() / 8, atol=1e-7)
    assert torch.allclose(logvar.grad, 0.3 * 0.5 * (logvar.detach().exp() - 1) / 8, atol=1e-7)


def test_gaussian_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu = torch.tensor([0.7, -1.2, 0.0])
    logvar = torch.tensor([-0.5, 0.8, 0.0])
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(400_000, 3)
    log_q = torch.distributions.Normal(mu, std).log_prob(z)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    mc = (log_q - log_p).mean(0)
    closed = gaussian_kl(mu, logvar)
    assert torch.allclose(closed, mc, atol=0.01), (closed, mc)
    assert float(closed[2]) == 0.0  # q equal to the prior costs nothing


def test_gaussian_kl_is_torch_distributions_kl_divergence():
    """The closed form written out for readers is the one torch.distributions knows."""
    torch.manual_seed(4)
    mu, logvar = torch.randn(16, 8) * 2, torch.randn(16, 8) * 2
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p), rtol=1e-5, atol=1e-5)


def test_vae_loss_is_reconstruction_plus_kl_per_image():
    torch.manual_seed(1)
    x, logits = torch.rand(8, 784), torch.randn(8, 784)
    mu, logvar = torch.randn(8, 4), torch.randn(8, 4)
    loss, rec, kl = vae_loss(logits, x, mu, logvar)
    assert torch.isclose(loss, rec + kl)
    assert torch.isclose(rec, reconstruction_loss(logits, x).mean())
    assert torch.isclose(kl, gaussian_kl(mu, logvar).sum(1).mean())
    loss_ae, rec_ae, kl_ae = ae_loss(logits, x)
    assert torch.isclose(loss_ae, rec) and float(kl_ae) == 0.0


def test_beta_weighs_only_the_kl_term_of_the_objective():
    torch.manual_seed(2)
    x, logits = torch.rand(8, 784), torch.randn(8, 784)
    mu, logvar = torch.randn(8, 4), torch.randn(8, 4)
    loss, rec, kl = vae_loss(logits, x, mu, logvar)
    for beta in (0.05, 4.0):
        loss_b, rec_b, kl_b = vae_loss(logits, x, mu, logvar, beta)
        assert torch.equal(rec_b, rec) and torch.equal(kl_b, kl)
        assert torch.isclose(loss_b, rec + beta * kl)
