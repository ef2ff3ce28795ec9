"""Conditional VAE (Sohn, Lee & Yan, 2015) with a 2-D latent space on MNIST: the digit's label goes into
the encoder and the decoder, so z holds the style and the label the digit.

Writes to Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_CVAE/: metrics.json, model.pt,
loss_curve.png, reconstructions.png, latent_space.png, label_planes.png, style_transfer.png,
samples.png, true_posterior.png, posterior_evolution.gif.

    python Models/Conditional_Variational_AutoEncoder.py [--help]
"""
from latentlab.cli import ModelSpec, main
from latentlab.models import CVAE

SPEC = ModelSpec(
    script="Conditional_Variational_AutoEncoder.py",
    model=CVAE,
    latent_dim=2,
    results_dir="Kết_quả_huấn_luyện_Variational_Autoecoder/2D_latent_CVAE",
    figures=("label_planes", "style_transfer", "samples", "posterior_evolution", "true_posterior"),
    epochs=30, batch_size=256, lr=2e-3,
)

if __name__ == "__main__":
    main(SPEC, __doc__)
