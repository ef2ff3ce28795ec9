"""VAE with a 32-D latent space on MNIST.

Writes to Kết_quả_huấn_luyện_Variational_Autoecoder/32D_latent_VAE/: metrics.json, model.pt,
loss_curve.png, reconstructions.png, latent_space.png (t-SNE), latent_pca.png, samples.png
(decoded prior samples), kl_per_dim.png, latent_walk.gif (spherical interpolations).

    python Models/Variational_AutoEncoder.py [--help]
"""
from latentlab.cli import ModelSpec, main
from latentlab.models import VAE

SPEC = ModelSpec(
    script="Variational_AutoEncoder.py",
    model=VAE,
    latent_dim=32,
    results_dir="Kết_quả_huấn_luyện_Variational_Autoecoder/32D_latent_VAE",
    figures=("latent_pca", "samples", "kl_per_dim", "latent_walk"),
    epochs=30, batch_size=256, lr=2e-3,
)

if __name__ == "__main__":
    main(SPEC, __doc__)
