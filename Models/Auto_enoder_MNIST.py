"""Autoencoder with a 32-D latent space on MNIST.

Writes to Kết_quả_huấn_luyện_Autoencoder/32D_latent_AE/: metrics.json, model.pt, loss_curve.png,
reconstructions.png, latent_space.png (t-SNE), latent_pca.png, samples.png (decoded samples of
a Gaussian mixture fit on the training codes), latent_walk.gif (linear interpolations).

    python Models/Auto_enoder_MNIST.py [--help]
"""
from latentlab.cli import ModelSpec, main
from latentlab.models import AutoEncoder

SPEC = ModelSpec(
    script="Auto_enoder_MNIST.py",
    model=AutoEncoder,
    latent_dim=32,
    results_dir="Kết_quả_huấn_luyện_Autoencoder/32D_latent_AE",
    figures=("latent_pca", "samples", "latent_walk"),
    epochs=15, batch_size=256, lr=4e-3,
)

if __name__ == "__main__":
    main(SPEC, __doc__)
