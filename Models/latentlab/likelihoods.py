"""The decoder's likelihood p(x|z): the one place that says how 784 pixels are scored given the decoder's
logits l, for training, −ELBO, IWAE and the exact 2-D likelihood alike.

Both choices treat pixels as independent, from an exponential family whose natural parameter is the logit:

    log p(x|z) = Σ_pixels  x·l − A(l)

- ``bernoulli`` (the default): A(l) = log(1 + e^l), the binary cross-entropy on logits. MNIST's grey
  levels in [0, 1] are not binary, so this is not a normalised density over them: the usual practice
  (Kingma & Welling, 2013), kept for comparison with the literature.
- ``continuous-bernoulli`` (Loaiza-Ganem & Cunningham, 2019, "The continuous Bernoulli: fixing a
  pervasive error in variational autoencoders"): the same shape made a density on [0, 1], with
  A(l) = log((e^l − 1) / l). Its mean is not sigmoid(l) but 1 / (1 − e^−l) − 1/l.

``PixelLikelihood.log_prob`` is the plain form, through ``torch.distributions``: training and every
test use it. ``log_normalizer`` is the fast form for evaluation, which scores millions of decoded
images (x·l is then one matrix product): tests/test_likelihoods.py locks the two together.
"""
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli


def _tanh_ratio(logits):
    """tanh(l/2) / l, which is 1/2 at l = 0 (Taylor there: a 0/0 would also poison the gradient)."""
    small = logits.abs() < 1e-2
    safe = torch.where(small, torch.ones_like(logits), logits)
    return torch.where(small, 0.5 - logits.pow(2) / 24, torch.tanh(safe / 2) / safe)


class StableContinuousBernoulli(ContinuousBernoulli):
    """torch's continuous Bernoulli with ``log_prob`` and ``mean`` computed from the logits, for any logit.

    torch's works from probabilities clamped to [ε, 1 − ε], i.e. |l| ≤ 15.9 in float32, beyond which
    its normaliser and mean stop moving (its mean never exceeds 0.937), while a trained decoder wants
    logits near ±100 for pixels at 0.01 or 0.99. Here A(l) = softplus(l) + log(tanh(l/2) / l), exact.
    """

    def log_prob(self, value):
        return value * self.logits - self.log_normalizer(self.logits)

    @staticmethod
    def log_normalizer(logits):
        return F.softplus(logits) + torch.log(_tanh_ratio(logits))

    @property
    def mean(self):
        """1 / (1 − e^−l) − 1/l, the derivative of A; 1/2 + l/12 near l = 0."""
        logits = self.logits
        small = logits.abs() < 1e-2
        safe = torch.where(small, torch.ones_like(logits), logits)
        return torch.where(small, 0.5 + logits / 12, -1 / torch.expm1(-safe) - 1 / safe)


PIXELS = {"bernoulli": Bernoulli, "continuous-bernoulli": StableContinuousBernoulli}
NAMES = tuple(PIXELS)
LOSS_NAMES = {"bernoulli": "BCE", "continuous-bernoulli": "−log p(x|z)"}  # −log p(x|z)'s name in figures


class PixelLikelihood:
    """p(x|z) for the decoder's logits: ``PixelLikelihood("bernoulli")`` or ``("continuous-bernoulli")``."""

    def __init__(self, name="bernoulli"):
        if name not in NAMES:
            raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(NAMES)}")
        self.name, self.loss_name = name, LOSS_NAMES[name]

    def pixels(self, logits):
        """Each pixel's distribution given its logit. Bernoulli skips validation: its support is {0, 1}, and
        MNIST's grey levels are scored as soft targets."""
        return PIXELS[self.name](logits=logits, validate_args=False)

    def log_prob(self, x, logits):
        """log p(x|z) per image, in nats: the pixels are independent given z, so their log-probabilities add."""
        return self.pixels(logits).log_prob(x).sum(-1)

    def mean(self, logits):
        """E[x|z]: the image a code decodes to."""
        return self.pixels(logits).mean

    def fast_log_prob(self, x, logits):
        """``log_prob`` for evaluation: x·l − ``log_normalizer(l)``, the same number to float rounding."""
        return (logits * x).sum(-1) - self.log_normalizer(logits)

    def log_normalizer(self, logits):
        """Σ_pixels A(l) per image, the part of −log p(x|z) that does not depend on x: log p(x|z) is
        x·l minus this. Evaluation only (no gradient needed); equals ``log_prob``'s to float rounding."""
        total = softplus_sum(logits)
        if self.name == "continuous-bernoulli":
            total = total + torch.log(_tanh_ratio(logits)).sum(-1)
        return total


# --------------------------------------------------------------------------- the fast form, evaluation only

def softplus_sum(logits, factors=16):
    """``F.softplus(logits).sum(-1)``, faster on CPU: max(l, 0) − log sigmoid(|l|), the logs of ``factors``
    values in [1/2, 1] taken as the log of their product (above 2^-16, so it cannot underflow), because
    sigmoid is vectorised there where log1p is not (docs/performance.md)."""
    sig = torch.sigmoid(logits.abs())
    n = logits.shape[-1]
    if n % factors:
        factors = 1
    products = sig.reshape(*logits.shape[:-1], factors, n // factors).prod(-2)
    return logits.clamp_min(0).sum(-1) - products.log_().sum(-1)
