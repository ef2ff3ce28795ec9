"""Shared code behind the four scripts in ``Models/``: one module per concern.

- ``data``: MNIST from the bundled IDX files, checked, as tensors on the device
- ``models``: the MLP autoencoder, the VAE and the LeNet used to judge samples
- ``losses``: reconstruction and KL terms (where the VAE loss lives)
- ``training``: the batch loop, evaluation passes, interrupt/resume state
- ``metrics``: everything written to ``metrics.json``
- ``figures``: static PNGs;  ``animations``: GIFs
- ``cli``: flags, devices, seeding, atomic results folders, one-line errors
"""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing data, ...): printed as one line, exit code 2."""
