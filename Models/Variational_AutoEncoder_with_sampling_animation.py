"""VAE with a 2-D latent space on MNIST, with walks through the prior as GIFs.

Writes to Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_VAE/: metrics.json, model.pt,
loss_curve.png, reconstructions.png, latent_space.png, latent_space_grid_sampling.png,
latent_space_classified_random_samples.png, vae_latent_walk.gif, posterior_evolution.gif.

    python Models/Variational_AutoEncoder_with_sampling_animation.py [--help]
"""
from latentlab.cli import ModelSpec, main
from latentlab.models import VAE

SPEC = ModelSpec(
    script="Variational_AutoEncoder_with_sampling_animation.py",
    model=VAE,
    latent_dim=2,
    results_dir="Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_VAE",
    figures=("latent_grid", "classified_plane", "vae_latent_walk", "posterior_evolution", "true_posterior"),
    epochs=30, batch_size=256, lr=2e-3,
)

if __name__ == "__main__":
    main(SPEC, __doc__)
