"""Autoencoder with a 2-D latent space on MNIST, with a red point sampling the plane as GIFs.

Writes to Kết_quả_huấn_luyện_Autoencoder/2D_latent_AE/: metrics.json, model.pt, loss_curve.png,
reconstructions.png, latent_space.png, latent_space_grid_sampling.png, sampling_1.gif (a loop
around the codes), sampling_2.gif (a tour through every digit's cluster centre).

    python Models/Auto_enoder_MNIST_with_sampling_animation.py [--help]
"""
from latentlab.cli import ModelSpec, main
from latentlab.models import AutoEncoder

SPEC = ModelSpec(
    script="Auto_enoder_MNIST_with_sampling_animation.py",
    model=AutoEncoder,
    latent_dim=2,
    results_dir="Kết_quả_huấn_luyện_Autoencoder/2D_latent_AE",
    figures=("latent_grid", "sampling_gifs"),
    epochs=30, batch_size=256, lr=2e-3,
)

if __name__ == "__main__":
    main(SPEC, __doc__)
