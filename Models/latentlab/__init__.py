"""Shared code behind the four scripts in ``Models/``: one module per concern.

- ``data``: MNIST from the bundled IDX files, checked, as tensors on the device
- ``preprocess``: a drawing made into an MNIST digit (the reference for the page's drawing pad)
- ``models``: the AE and the VAE over any encoder and decoder, the MLP and conv pairs, and the LeNet
  used to judge samples (nothing else)
- ``losses``: reconstruction and KL terms (where the VAE loss lives)
- ``training``: the textbook step (objective, ``loss.backward()``, Adam, schedule), evaluation passes,
  the state an interrupted run resumes from
- ``checkpoints``: every file of weights or training state (model.pt, resume state, the LeNet)
- ``exact``: the 2-D VAE's exact likelihood and true posteriors, by quadrature over the code plane
- ``metrics``: everything written to ``metrics.json``
- ``style``: the digit palette, scatter, legends and prior circles every picture shares
- ``figures``: static PNGs;  ``animations``: GIFs
- ``page``: the data files through which ``index.html`` shows a results folder (and the LeNet)
- ``results``: evaluate and draw a run into its staging folder
- ``folders``: one writer per results folder (an OS lock), staging, atomic swap, repair after a crash
- ``cli``: flags, devices, seeding, the run, one-line errors
- ``registry``: the list of the models (their scripts)
- ``reports``: README's table, comparison.png and the β-bridge figures, over many runs
- ``sweep``: many runs of the scripts (seeds, β) as subprocesses, and their summary

Imports run one way, in this order; ``tests/test_layout.py`` checks there is no circle.
"""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing data, ...): printed as one line, exit code 2."""
