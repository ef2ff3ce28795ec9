"""The models this repo compares, one line each: the script in ``Models/`` that declares it.

Each script holds its ``SPEC`` (``cli.ModelSpec``); everything that goes over all models (the
comparison table, the benchmark, the tests) reads them from here, so a fifth model is one new script
and one line below, plus its line in page/models.js for the page to load its results (a page opened
from file:// cannot list folders; tests/test_page.py checks that the two lists agree).
"""
import importlib

SCRIPTS = (  # module names in Models/, in the order tables list them
    "Auto_enoder_MNIST_with_sampling_animation",        # AE 2-D
    "Variational_AutoEncoder_with_sampling_animation",  # VAE 2-D
    "Auto_enoder_MNIST",                                # AE 32-D
    "Variational_AutoEncoder",                          # VAE 32-D
    "Conditional_Variational_AutoEncoder",              # CVAE 2-D
)


def specs():
    """{spec.key: spec} of every model, in ``SCRIPTS`` order (``Models/`` must be on sys.path, as it
    is for the scripts themselves, the tests and the benchmark)."""
    out = {}
    for name in SCRIPTS:
        spec = importlib.import_module(name).SPEC
        if spec.key in out:
            raise ValueError(f"{name}.py and {out[spec.key].script} declare the same model {spec.key}")
        out[spec.key] = spec
    return out
