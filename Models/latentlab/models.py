"""The models: an autoencoder and a variational autoencoder over any encoder and decoder, the two
pairs this repo trains (an MLP and a small convolutional one), and a LeNet that judges samples.

- ``AutoEncoder``: deterministic encoder/decoder (Hinton & Salakhutdinov, 2006, "Reducing the
  dimensionality of data with neural networks"). The code layer is linear: the original scripts put a
  ReLU on it, which folds half of every axis onto zero and wastes most of a 2-D plane.
- ``VAE``: Kingma & Welling, 2013, "Auto-Encoding Variational Bayes": diagonal Gaussian q(z|x),
  N(0, I) prior, Bernoulli p(x|z) whose logits the decoder returns.
- ``mlp_pair`` (784-512-256-z, ReLU) and ``conv_pair`` (the small pair of the TensorFlow CVAE tutorial
  and keras.io's VAE example: two stride-2 3x3 convolutions of 32 and 64 channels and a dense layer to
  the latent, mirrored back with transposed convolutions).
- ``LeNet``: LeCun et al., 1998, "Gradient-based learning applied to document recognition"
  (ReLU and max-pool variant); only used to judge reconstructions and samples.

Encoders take and decoders return flat rows of 784 pixels (decoders return logits); anything that
keeps to that trains, evaluates and checkpoints like the defaults.
"""
import torch
from torch import nn

IMAGE_PIXELS = 28 * 28
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


def mlp_pair(code_size, latent_dim, hidden=(512, 256)):
    """(encoder 784 → hidden → ``code_size``, decoder ``latent_dim`` → reversed hidden → 784)."""
    return mlp([IMAGE_PIXELS, *hidden, code_size]), mlp([latent_dim, *reversed(hidden), IMAGE_PIXELS])


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


class AutoEncoder(nn.Module):
    kind = "ae"

    def __init__(self, encoder, decoder, latent_dim):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def encode(self, x):
        """The code; same signature as ``VAE.encode`` so metrics treat both alike."""
        return self.encoder(x)

    def decode(self, z):
        """Pixel logits of codes of shape (..., latent_dim); ``torch.sigmoid`` of them is the image."""
        return decode_rows(self.decoder, z)

    def forward(self, x):
        z = self.encode(x)
        return self.decode(z), z


class VAE(nn.Module):
    kind = "vae"

    def __init__(self, encoder, decoder, latent_dim):
        """``encoder`` returns 2 x ``latent_dim`` numbers per image: the means, then the log-variances."""
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def encode(self, x):
        """Posterior mean: the deterministic code used for plots, kNN and reconstructions."""
        return self.posterior(x)[0]

    def posterior(self, x):
        # float32 even under bf16 autocast, so the latent and the KL stay precise
        mu, logvar = self.encoder(x).float().chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z):
        return decode_rows(self.decoder, z)

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


def build_model(kind, latent_dim, arch="mlp", hidden=(512, 256)):
    """The ``kind`` ("ae" or "vae") over the ``arch`` ("mlp" or "conv") pair; a VAE's encoder emits a
    mean and a log-variance per latent dimension."""
    if kind not in ("ae", "vae"):
        raise ValueError(f"unknown model kind {kind!r}")
    code_size = 2 * latent_dim if kind == "vae" else latent_dim
    if arch == "mlp":
        encoder, decoder = mlp_pair(code_size, latent_dim, hidden)
    elif arch == "conv":
        encoder, decoder = conv_pair(code_size, latent_dim)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return (VAE if kind == "vae" else AutoEncoder)(encoder, decoder, latent_dim)
