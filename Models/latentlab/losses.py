"""Losses, in nats per image (summed over the 784 pixels, averaged over the batch).

The VAE minimises the negative ELBO, -E_q[log p(x|z)] + KL(q(z|x) || p(z)): the reconstruction term is
the decoder's likelihood (``likelihoods``: Bernoulli by default, i.e. binary cross-entropy on logits
with MNIST's grey levels as soft targets), and the KL between a diagonal Gaussian and N(0, I) is
in closed form (Kingma & Welling, 2013, Appendix B):
    -KL = 1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
The autoencoder is trained on the same reconstruction term, so the two differ only by the KL
term and the sampling noise. A β-VAE (Higgins et al., 2017, "β-VAE: Learning basic visual concepts
with a constrained variational framework") trains on reconstruction + β·KL instead; β → 0 leads
towards the autoencoder, and β = 1 is the ELBO itself.
"""
import torch

from .likelihoods import PixelLikelihood

BERNOULLI = PixelLikelihood("bernoulli")


def reconstruction_loss(logits, x, likelihood=BERNOULLI):
    """-log p(x|z) per image, for the decoder's ``logits`` of z."""
    return -likelihood.log_prob(x, logits)


def gaussian_kl(mu, logvar):
    """Per-image, per-dimension KL(N(mu, sigma^2) || N(0, 1)) (Kingma & Welling, Appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(logits, x, mu, logvar, beta=1.0, likelihood=BERNOULLI):
    """(training objective rec + β·KL, rec, KL), batch means in nats per image; with β = 1 (the
    default) the objective is the negative ELBO. β-VAE: Higgins et al. (2017)."""
    rec = reconstruction_loss(logits, x, likelihood).mean()
    kl = gaussian_kl(mu, logvar).sum(dim=-1).mean()
    return rec + beta * kl, rec, kl


def ae_loss(logits, x, likelihood=BERNOULLI):
    rec = reconstruction_loss(logits, x, likelihood).mean()
    return rec, rec, torch.zeros_like(rec)
