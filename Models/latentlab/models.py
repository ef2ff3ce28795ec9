"""The models: an autoencoder and a variational autoencoder over any encoder and decoder, the two
pairs this repo trains (an MLP and a small convolutional one), and a LeNet that judges samples.

- ``AutoEncoder``: deterministic encoder/decoder (Hinton & Salakhutdinov, 2006, "Reducing the
  dimensionality of data with neural networks"). The code layer is linear: the original scripts put a
  ReLU on it, which folds half of every axis onto zero and wastes most of a 2-D plane.
- ``VAE``: Kingma & Welling, 2013, "Auto-Encoding Variational Bayes": diagonal Gaussian q(z|x),
  N(0, I) prior, and p(x|z) from the decoder's logits (``likelihoods``: Bernoulli by default).
- ``CVAE``: Sohn, Lee & Yan, 2015, "Learning Structured Output Representation using Deep Conditional
  Generative Models": the VAE with the digit's label given to the encoder and the decoder, q(z|x, y)
  and p(x|z, y), and the same prior N(0, I); z is left to hold what the label does not say (the style).
- ``mlp_pair`` (784-512-256-z, ReLU) and ``conv_pair`` (the small pair of the TensorFlow CVAE tutorial
  and keras.io's VAE example: two stride-2 3x3 convolutions of 32 and 64 channels and a dense layer to
  the latent, mirrored back with transposed convolutions).
- ``LeNet``: LeCun et al., 1998, "Gradient-based learning applied to document recognition"
  (ReLU and max-pool variant); only used to judge reconstructions and samples.

The interface every model keeps, and all that training, evaluation, figures, the page and checkpoints
use (docs/models.md): ``loss(x, beta, generator, y)`` → (objective, reconstruction, KL); ``encode(x, y)``;
``decode(z, y)`` → logits; ``image(z, y)``; ``log_likelihood(x, logits)``; ``fit_prior``, ``prior_mixture``,
``sample_prior(n, seed)``, ``generate(n, seed)``; and where ``variational``: ``posterior(x, y)`` → (mu, logvar),
``sample``, ``log_prior(z)``, ``log_weights``. ``y``: the digits' labels, which every caller passes and only a
``conditional`` model reads. Encoders take and decoders return flat rows of 784 pixels (decoders return
logits); any pair that keeps to that trains, evaluates and checkpoints like the defaults.
"""
import math

import numpy as np
import torch
from torch import nn

from .likelihoods import PixelLikelihood
from .losses import ae_loss, vae_loss

IMAGE_PIXELS = 28 * 28
LOG_2PI = math.log(2 * math.pi)
ARCHS = ("mlp", "conv")
ACTIVATION = nn.ReLU  # between layers of both pairs: try nn.LeakyReLU, nn.ELU, nn.Tanh, ...


def mlp(sizes):
    """Linear layers with ``ACTIVATION`` between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATION())
    return nn.Sequential(*layers)


def mlp_pair(code_size, latent_dim, hidden=(512, 256), condition_size=0):
    """(encoder 784 → hidden → ``code_size``, decoder ``latent_dim`` → reversed hidden → 784); each takes
    ``condition_size`` more inputs where the model is conditional (the label, one-hot)."""
    return (mlp([IMAGE_PIXELS + condition_size, *hidden, code_size]),
            mlp([latent_dim + condition_size, *reversed(hidden), IMAGE_PIXELS]))


def conv_pair(code_size, latent_dim):
    """(encoder, decoder): 28x28 → 3x3 stride-2 convolutions to 32x14x14 and 64x7x7 → a dense layer to
    ``code_size``; the decoder mirrors it (dense to 64x7x7, transposed convolutions to 32x14x14 and
    1x28x28 logits)."""
    encoder = nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, 3, stride=2, padding=1), ACTIVATION(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), ACTIVATION(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, code_size),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 64 * 7 * 7), ACTIVATION(),
        nn.Unflatten(1, (64, 7, 7)),
        # output_padding=1 makes each layer exactly double the side (7 → 14 → 28)
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), ACTIVATION(),
        nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1),
        nn.Flatten(),
    )
    return encoder, decoder


def decode_rows(decoder, z):
    """``decoder`` applied to codes with any leading dimensions (the IWAE decodes k samples of every
    image at once), as rows of one batch: a convolution takes only (N, latent)."""
    return decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)


class LatentModel(nn.Module):
    """What every model shares: an encoder, a decoder and the likelihood p(x|z) of its logits. Each
    subclass adds its ``loss`` and its prior; everything outside this module uses only the interface
    (docs/models.md)."""
    name = label = None
    code_size = 1       # numbers the encoder emits per latent dimension
    variational = False  # True: q(z|x) is a distribution and p(z) a fixed prior (posterior, log_prior, a KL term)
    conditional = False  # True: the encoder and the decoder read the label y too (condition_size inputs more)
    condition_size = 0
    archs = ARCHS        # the encoder/decoder pairs it is built with

    def __init__(self, encoder, decoder, latent_dim, likelihood="bernoulli"):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim
        self.likelihood = PixelLikelihood(likelihood)

    def decode(self, z, y=None):
        """Pixel logits of codes of shape (..., latent_dim); ``y``, the labels, only a conditional model reads."""
        return decode_rows(self.decoder, z)

    def log_likelihood(self, x, logits):
        """log p(x|z) per image, in nats, for the decoder's ``logits`` of z: the one likelihood."""
        return self.likelihood.log_prob(x, logits)

    def image(self, z, y=None):
        """E[x|z]: the picture a code decodes to."""
        return self.likelihood.mean(self.decode(z, y))

    def generate(self, n, seed=0):
        """``n`` new images: codes from the prior (``sample_prior``), decoded."""
        return self.image(self.sample_prior(n, seed))

    @torch.no_grad()
    def init_output_bias(self, x_train):
        """Start the decoder at the mean training image: the bias of its last layer that has one is set to
        the logit of each pixel's mean (784 biases, a Linear to the pixels) or of the mean pixel (one bias,
        a convolution to one channel). The first epochs then learn digits instead of the background (as in
        Burda et al.'s IWAE code). Returns False, leaving the decoder as built, for any other last layer."""
        with_bias = [m for m in self.decoder.modules() if getattr(m, "bias", None) is not None]
        if not with_bias:
            return False
        bias, p = with_bias[-1].bias, x_train.mean(0).clamp(1e-3, 1 - 1e-3)
        if bias.numel() == p.numel():
            bias.copy_(torch.logit(p).view_as(bias))
        elif bias.numel() == 1:
            bias.fill_(torch.logit(x_train.mean()).item())
        else:
            return False
        return True


class AutoEncoder(LatentModel):
    """Deterministic encoder and decoder, trained on the reconstruction term alone. It has no prior: after
    training, ``fit_prior`` fits one to its training codes, so it can generate."""
    name, label = "ae", "AE"
    code_density = None  # the prior fit_prior fits after training

    def encode(self, x, y=None):
        """The code; same signature as ``VAE.encode`` so metrics treat both alike."""
        return self.encoder(x)

    def loss(self, x, beta=1.0, generator=None, y=None):
        """(objective, reconstruction, KL = 0) of a batch, batch means in nats per image: −log p(x|z) at
        z = encode(x). ``beta`` and ``generator`` are the VAE's: an autoencoder has no KL and no noise."""
        return ae_loss(self.decode(self.encode(x)), x, self.likelihood)

    def forward(self, x):
        z = self.encode(x)
        return self.decode(z), z

    def fit_prior(self, train_codes, seed=0, components=10):
        """A 10-component Gaussian mixture fitted to the training codes (numpy), the ex-post density of
        Ghosh et al. (2020, "From variational to deterministic autoencoders"). EM stops once the mean
        log-likelihood gains less than 0.01 nats per code, not sklearn's 0.001: far less time for a
        slightly lower test log-likelihood."""
        from sklearn.mixture import GaussianMixture  # here: slow to import, and only evaluation needs it
        self.code_density = GaussianMixture(components, covariance_type="full", reg_covar=1e-4, tol=1e-2,
                                            random_state=seed).fit(train_codes)

    def prior_mixture(self):
        """The prior as a Gaussian mixture of numpy arrays (weights, means, Cholesky factors)."""
        d = self.code_density
        return d.weights_, d.means_, np.linalg.cholesky(d.covariances_)

    def sample_prior(self, n, seed=0):
        """``n`` codes from the fitted mixture. Drawn here rather than by sklearn's ``sample()``, which
        sorts samples by component and trips numpy's PSD check on float-rounded covariances."""
        weights, means, chol = self.prior_mixture()
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(weights), size=n, p=weights)
        z = means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.standard_normal((n, means.shape[1])))
        return torch.as_tensor(z, dtype=torch.float32, device=next(self.parameters()).device)


class VAE(LatentModel):
    """Kingma & Welling (2013): a diagonal Gaussian q(z|x), the prior N(0, I), the loss −ELBO (β·KL)."""
    name, label = "vae", "VAE"
    code_size = 2       # the encoder emits a mean and a log-variance per latent dimension
    variational = True

    def posterior(self, x, y=None):
        """q(z|x) = N(mu, diag(exp(logvar))): the encoder's means, then its log-variances."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def encode(self, x, y=None):
        """Posterior mean: the deterministic code used for plots, kNN and reconstructions."""
        return self.posterior(x, y)[0]

    @staticmethod
    def sample(mu, logvar, eps=None):
        """z ~ q(z|x) by the reparameterisation trick (Kingma & Welling, section 2.4): z = mu + sigma * eps,
        sigma = exp(logvar / 2), eps ~ N(0, I) (drawn here unless given)."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def loss(self, x, beta=1.0, generator=None, y=None):
        """(rec + β·KL, rec, KL) of a batch, batch means in nats per image, with one z ~ q(z|x) per image
        (its noise from ``generator`` when given); with β = 1 the objective is the negative ELBO."""
        mu, logvar = self.posterior(x, y)
        eps = None if generator is None else torch.randn(mu.shape, generator=generator, device=mu.device)
        return vae_loss(self.decode(self.sample(mu, logvar, eps), y), x, mu, logvar, beta, self.likelihood)

    def forward(self, x):
        mu, logvar = self.posterior(x)
        return self.decode(self.sample(mu, logvar)), mu, logvar

    @staticmethod
    def log_prior(z):
        """log N(z; 0, I), summed over the latent dimensions."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def log_weights(self, x, k, generator=None, y=None):
        """log p(x|z) + log p(z) − log q(z|x) for ``k`` samples z ~ q(z|x) of each image, (k, len(x)):
        their mean estimates the ELBO, the log of their mean exp is the IWAE bound (Burda et al., 2015).
        log p(x|z) in the likelihood's fast form (millions of decoded images), equal to ``log_likelihood``."""
        mu, logvar = self.posterior(x, y)
        eps = torch.randn((k, *mu.shape), generator=generator, device=x.device)
        z = self.sample(mu, logvar, eps)
        log_qz = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)  # N(z; mu, sigma²) at z = mu + sigma·eps
        return self.likelihood.fast_log_prob(x, self.decode(z, y)) + self.log_prior(z) - log_qz

    def fit_prior(self, train_codes, seed=0):
        """Nothing to fit: the prior N(0, I) is fixed."""

    def prior_mixture(self):
        """N(0, I) as a one-component mixture (weights, means, Cholesky factors)."""
        return np.ones(1), np.zeros((1, self.latent_dim)), np.eye(self.latent_dim)[None]

    def sample_prior(self, n, seed=0):
        """``n`` codes z ~ N(0, I), from their own seeded generator."""
        device = next(self.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        return torch.randn((n, self.latent_dim), generator=gen, device=device)


class CVAE(VAE):
    """Sohn, Lee & Yan (2015): the VAE with the label y beside x in the encoder, q(z|x, y), and beside z in
    the decoder, p(x|z, y), one-hot; the prior stays N(0, I). Its −ELBO, IWAE and exact NLL are of
    −log p(x|y): the label is given, so they are not comparable with the VAE's −log p(x)."""
    name, label = "cvae", "CVAE"
    conditional = True
    condition_size = 10  # the digits 0-9, one-hot
    archs = ("mlp",)     # the label joins the pixels and the code as inputs of Linear layers

    def given(self, rows, y):
        """``rows`` (..., n) with the one-hot labels ``y`` appended to each row (broadcast over the leading
        dimensions, as the IWAE's k samples of each image)."""
        if y is None:
            raise ValueError(f"the {self.label} reads the digits' labels: pass y")
        onehot = nn.functional.one_hot(y, self.condition_size).to(rows.dtype)
        return torch.cat([rows, onehot.expand(*rows.shape[:-1], self.condition_size)], -1)

    def posterior(self, x, y=None):
        mu, logvar = self.encoder(self.given(x, y)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z, y=None):
        return decode_rows(self.decoder, self.given(z, y))

    def generate(self, n, seed=0):
        """``n`` images: codes from N(0, I), each decoded under a label, 0-9 in turn (p(y) uniform)."""
        z = self.sample_prior(n, seed)
        return self.image(z, torch.arange(n, device=z.device) % self.condition_size)


class LeNet(nn.Module):
    """Two conv blocks and two dense layers; ``features`` is the 84-unit penultimate layer.

    Each block pools before its ReLU (the same function, as ReLU is monotone, on 4x fewer values),
    and images enter in channels-last layout: both for speed on CPU.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 20, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(50 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
        )
        self.head = nn.Linear(84, 10)

    def features(self, x):
        return self.conv(x.view(-1, 1, 28, 28).contiguous(memory_format=torch.channels_last))

    def forward(self, x):
        return self.head(self.features(x))


MODELS = {cls.name: cls for cls in (AutoEncoder, VAE, CVAE)}


def build_model(name, latent_dim, arch="mlp", hidden=(512, 256), likelihood="bernoulli"):
    """The model ``name`` (a key of ``MODELS``, or a class) over the ``arch`` ("mlp" or "conv") pair."""
    cls = MODELS.get(name) if isinstance(name, str) else name
    if cls is None:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    code_size = cls.code_size * latent_dim
    if arch == "mlp":
        encoder, decoder = mlp_pair(code_size, latent_dim, hidden, cls.condition_size)
    elif arch == "conv" and arch in cls.archs:
        encoder, decoder = conv_pair(code_size, latent_dim)
    else:
        raise ValueError(f"unknown architecture {arch!r} for the {cls.label}; choose from {', '.join(cls.archs)}")
    return cls(encoder, decoder, latent_dim, likelihood)
