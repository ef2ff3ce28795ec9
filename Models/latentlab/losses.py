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


def softplus_sum(logits, factors=16):
    """``F.softplus(logits).sum(-1)``, ~10x faster on CPU, where torch's log1p and exp are not
    vectorised but sigmoid is.

    softplus(l) = max(l, 0) - log sigmoid(|l|); the logs of ``factors`` values in [1/2, 1] are taken as
    the log of their product, above 2^-16 so it cannot underflow. The products run across the row's
    16 slices of 49 pixels (a product over a contiguous last axis of 28, as before, is a scalar loop:
    69 against 33 us for 256 images, 454 against 183 us for 2,000, on a 2-core EPYC). Measured
    against float64 on 100,000 images' logits ~ N(0, 4^2): the same float32 rounding as F.softplus
    (at most 3e-4 nats per image, mean error 6e-8).
    """
    sig = torch.sigmoid(logits.abs())
    n = logits.shape[-1]
    if n % factors:
        factors = 1
    products = sig.reshape(*logits.shape[:-1], factors, n // factors).prod(-2)
    return logits.clamp_min(0).sum(-1) - products.log_().sum(-1)


def bernoulli_nll(logits, x):
    """-log p(x|l) = sum_pixels softplus(l) - x*l per image, in the logits' dtype."""
    return softplus_sum(logits) - (logits * x).sum(-1)


def bernoulli_nll_grad(logits, x):
    """Its exact gradient with respect to the logits: sigmoid(l) - x."""
    return torch.sigmoid(logits).sub_(x)


class BernoulliNLL(torch.autograd.Function):
    """-log p(x|l) = sum_pixels softplus(l) - x*l, with its exact gradient sigmoid(l) - x.

    The same function as ``F.binary_cross_entropy_with_logits(...).sum(-1)``, computed in float32
    whatever the logits' dtype; fused by hand because torch's version spends most of a bf16 training
    step in its unvectorised log1p (profiled on a 2-core EPYC: 2.2 ms of a 4.3 ms step at batch 256).
    """

    @staticmethod
    def forward(ctx, logits, x):
        wide = torch.promote_types(logits.dtype, torch.float32)  # bf16 → float32; float64 stays
        logits32, x = logits.to(wide), x.to(wide)
        ctx.save_for_backward(logits32, x)
        ctx.dtype = logits.dtype
        return bernoulli_nll(logits32, x)

    @staticmethod
    def backward(ctx, grad):
        logits32, x = ctx.saved_tensors
        return bernoulli_nll_grad(logits32, x).mul_(grad.unsqueeze(-1)).to(ctx.dtype), None


def reconstruction_bce(logits, x):
    """Per-image binary cross-entropy summed over pixels: -log p(x|z) for a Bernoulli decoder."""
    return BernoulliNLL.apply(logits, x)


def gaussian_kl(mu, logvar):
    """Per-image, per-dimension KL(N(mu, sigma^2) || N(0, 1)) (Kingma & Welling, Appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl_grad(mu, logvar):
    """Gradients of ``gaussian_kl`` with respect to mu and logvar."""
    return mu, 0.5 * (logvar.exp() - 1.0)


def vae_loss(logits, x, mu, logvar, beta=1.0):
    """(training objective rec + β·KL, rec, KL), batch means in nats per image; with β = 1 (the
    default) the objective is the negative ELBO. β-VAE: Higgins et al. (2017)."""
    rec = reconstruction_bce(logits, x).mean()
    kl = gaussian_kl(mu, logvar).sum(dim=-1).mean()
    return rec + beta * kl, rec, kl


def ae_loss(logits, x):
    rec = reconstruction_bce(logits, x).mean()
    return rec, rec, torch.zeros_like(rec)
