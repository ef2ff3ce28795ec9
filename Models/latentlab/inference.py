"""Per-image variational inference: for each image its own q(z|x) = N(mu, diag(exp(logvar))), fitted by
maximising that image's ELBO with the decoder frozen, the textbook step of VI that an encoder amortises.

Cremer, Li & Duvenaud (2018, "Inference Suboptimality in Variational Autoencoders") split the inference gap
log p(x) − ELBO(q_encoder) into the *approximation gap* log p(x) − ELBO(q*), with q* the best member of the
family for that image, and the *amortization gap* ELBO(q*) − ELBO(q_encoder). Here q* is found the standard
way: the reparameterisation trick (Kingma & Welling, 2013), autograd and ``torch.optim.Adam``, every image of
a batch with independent parameters (the objective is a sum over images, so one image's gradient does not
depend on the others), started from the encoder's q.
"""
import torch

from .losses import gaussian_kl


def elbo(model, x, mu, logvar, samples=1, generator=None, y=None):
    """Per-image ELBO in nats, (len(x),): E_q[log p(x|z)] by ``samples`` reparameterised draws, minus the
    closed-form KL(q ‖ N(0, I)) (Kingma & Welling's estimator B). Differentiable in ``mu`` and ``logvar``."""
    eps = torch.randn((samples, *mu.shape), generator=generator, device=mu.device)
    z = model.sample(mu, logvar, eps)
    log_px = model.log_likelihood(x, model.decode(z, y)).mean(0)
    return log_px - gaussian_kl(mu, logvar).sum(-1)


def fit_gaussian(model, x, mu, logvar, steps=300, lr=0.05, samples=8, seed=0, y=None):
    """q* for each row of ``x``: (mu, logvar, per-step mean ELBO) after ``steps`` Adam steps on the sum of the
    images' ELBOs, started from ``mu``, ``logvar`` (the encoder's q, or the prior's zeros). The model's own
    parameters are left untouched (no gradient is kept for them)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    mu, logvar = mu.detach().clone().requires_grad_(), logvar.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([mu, logvar], lr=lr)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    trace = []
    try:
        for _ in range(steps):
            loss = -elbo(model, x, mu, logvar, samples, gen, y).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            trace.append(-loss.item() / len(x))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return mu.detach(), logvar.detach(), trace
