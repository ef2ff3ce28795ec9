"""Shared code behind the four scripts in ``Models/``: one module per concern.

- ``data``: MNIST from the bundled IDX files, checked, as tensors on the device
- ``likelihoods``: p(x|z) of the decoder's logits, Bernoulli or continuous Bernoulli (the one likelihood)
- ``losses``: the reconstruction and KL terms, ``vae_loss`` and ``ae_loss`` (where the VAE loss lives)
- ``models``: the AE and the VAE over any encoder and decoder (the one model interface), the MLP and conv
  pairs, and the LeNet used to judge samples
- ``precision``: bfloat16 layers where the hardware has them, kept out of the three files above
- ``training``: the textbook step (``model.loss``, ``loss.backward()``, Adam, schedule), evaluation passes,
  the state an interrupted run resumes from
- ``checkpoints``: every file of weights or training state (model.pt, resume state, the LeNet)
- ``exact``: the 2-D VAE's exact likelihood and true posteriors, by quadrature over the code plane
- ``inference``: per-image variational inference, each image's own q fitted on its ELBO (three families)
- ``metrics``: everything written to ``metrics.json``
- ``style``: the digit palette, scatter, legends and prior circles every picture shares
- ``run_figures``: one run's static PNGs;  ``run_animations``: its GIFs
- ``page_export``: the data files through which ``index.html`` shows a results folder (and the LeNet)
- ``write_results``: evaluate a trained model and write every file of its results into a staging folder
- ``folder_swap``: one writer per results folder (an OS lock), staging, atomic swap, repair after a crash
- ``cli``: flags, devices, seeding, the run, one-line errors
- ``registry``: the list of the models (their scripts)
- ``sweep_reports``: over many runs, README's table, comparison.png and the β-bridge figures
- ``sweep_jobs``: many runs of the scripts (seeds, β, ...) as submitit jobs, and their summary

Imports run one way, in this order; ``tests/test_layout.py`` checks there is no circle.
"""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing data, ...): printed as one line, exit code 2."""
