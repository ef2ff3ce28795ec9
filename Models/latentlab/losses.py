"""Losses, in nats per image (summed over the 784 pixels, averaged over the batch).

The VAE minimises the negative ELBO, -E_q[log p(x|z)] + KL(q(z|x) || p(z)), with a Bernoulli
decoder (binary cross-entropy on logits; MNIST's grey levels are used as soft targets) and the
closed-form KL between a diagonal Gaussian and N(0, I) from Kingma & Welling (2013), Appendix B:
    -KL = 1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
The autoencoder is trained on the same reconstruction term, so the two differ only by the KL
term and the sampling noise. A β-VAE (Higgins et al., 2017, "β-VAE: Learning basic visual concepts
with a constrained variational framework") trains on reconstruction + β·KL instead; β → 0 leads
towards the autoencoder, and β = 1 is the ELBO itself.
"""
import torch
import torch.nn.functional as F


def softplus_sum(logits, factors=16):
    """``F.softplus(logits).sum(-1)`` for the evaluation's millions of decoded images (IWAE, the exact
    likelihood; never in training): max(l, 0) - log sigmoid(|l|), the logs of ``factors`` values in
    [1/2, 1] taken as the log of their product (above 2^-16, so it cannot underflow), because on CPU
    sigmoid is vectorised where log1p is not. tests/test_metrics.py checks it against float64."""
    sig = torch.sigmoid(logits.abs())
    n = logits.shape[-1]
    if n % factors:
        factors = 1
    products = sig.reshape(*logits.shape[:-1], factors, n // factors).prod(-2)
    return logits.clamp_min(0).sum(-1) - products.log_().sum(-1)


def reconstruction_bce(logits, x):
    """Per-image binary cross-entropy summed over pixels: -log p(x|z) for a Bernoulli decoder, scored
    in float32 even when autocast made the logits bfloat16."""
    return F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").sum(-1)


def gaussian_kl(mu, logvar):
    """Per-image, per-dimension KL(N(mu, sigma^2) || N(0, 1)) (Kingma & Welling, Appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(logits, x, mu, logvar, beta=1.0):
    """(training objective rec + β·KL, rec, KL), batch means in nats per image; with β = 1 (the
    default) the objective is the negative ELBO. β-VAE: Higgins et al. (2017)."""
    rec = reconstruction_bce(logits, x).mean()
    kl = gaussian_kl(mu, logvar).sum(dim=-1).mean()
    return rec + beta * kl, rec, kl


def ae_loss(logits, x):
    rec = reconstruction_bce(logits, x).mean()
    return rec, rec, torch.zeros_like(rec)
