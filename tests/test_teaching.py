"""The code that teaches is the code that trains: an edit a reader makes to the model, the loss or the
sampling changes the weights training produces, and any encoder and decoder trains, saves and comes
back. Each edit is made to the source of a copy of the package, as a reader would make it, and the
copy trains one epoch in its own process."""
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import MODELS, REPO, SCORED, SPECS, read_metrics, run_script

ONE_EPOCH = f"""
import hashlib, sys, torch
from latentlab.data import load_mnist
from latentlab.models import build_model
from latentlab.training import fit
data = load_mnist({str(REPO / "data")!r})
data.x_train, data.x_test = data.x_train[:1024], data.x_test[:200]
torch.manual_seed(0)
model = build_model("vae", 32)
fit(model, data, epochs=1, batch_size=256, lr=2e-3, progress="none")
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
print(hashlib.sha256(weights.numpy().tobytes()).hexdigest())
"""

EDITS = {  # file: (the text as committed, the reader's edit)
    "the KL averaged over dimensions": ("losses.py", "kl = gaussian_kl(mu, logvar).sum(dim=-1).mean()",
                                        "kl = gaussian_kl(mu, logvar).mean()"),
    "the KL times 0.1": ("losses.py", "return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)",
                         "return 0.1 * 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)"),
    "sample returns the mean": ("models.py", "return mu + eps * torch.exp(0.5 * logvar)", "return mu"),
}


def trained_weights(tmp_path, edit=None):
    """The sha256 of the weights after one epoch of a copy of the package, with ``edit`` applied."""
    root = tmp_path / (edit or "clean").replace(" ", "_")
    shutil.copytree(MODELS / "latentlab", root / "latentlab", ignore=shutil.ignore_patterns("*.pt", "*.npz", "__pycache__"))
    if edit is not None:
        name, before, after = EDITS[edit]
        source = (root / "latentlab" / name).read_text()
        assert source.count(before) == 1, f"{name} no longer holds {before!r}: update this test"
        (root / "latentlab" / name).write_text(source.replace(before, after))
    r = subprocess.run([sys.executable, "-c", ONE_EPOCH], cwd=root, capture_output=True, text=True, timeout=900,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
def test_edits_to_the_loss_or_the_sampling_change_what_trains(tmp_path):
    clean = trained_weights(tmp_path)
    assert trained_weights(tmp_path / "again") == clean   # same seed, same machine: same weights
    for edit in EDITS:
        assert trained_weights(tmp_path, edit) != clean, f"{edit}: the trained weights did not change"


@pytest.mark.slow  # a whole run with every figure and GIF, then --plots-only
def test_an_encoder_with_another_activation_trains_saves_and_comes_back(tmp_path, monkeypatch, capsys):
    """models.ACTIVATION is what the MLPs put between layers: a LeakyReLU trains through fit, saves
    into model.pt, and --plots-only rebuilds it; the page data carries it, with its slope below zero."""
    from latentlab import cli, models
    monkeypatch.setattr(models, "ACTIVATION", torch.nn.LeakyReLU)
    spec = SPECS["vae32"]
    out = tmp_path / "leaky"
    from latentlab.checkpoints import load_run
    cli.main(spec, argv=["--epochs", "1", "--train-subset", "1000", *SCORED, "--quiet", "--out", str(out)])
    trained = (out / "model.pt").read_bytes()
    cli.main(spec, argv=["--plots-only", *SCORED, "--quiet", "--out", str(out)])
    assert (out / "model.pt").read_bytes() == trained and read_metrics(out)["plots_only"]
    model, config, _ = load_run(out, spec, "cpu")
    assert isinstance(model.encoder[1], torch.nn.LeakyReLU) and config["arch"] == "mlp"
    page = (out / "page_data.js").read_text()
    assert '"unsupported":null' in page and '"encoder":{"sizes":[784,512,256,64],"slope":0.01' in page


@pytest.mark.slow
def test_the_conv_pair_trains_saves_and_comes_back_with_plots_only(tmp_path):
    """The AE 2-D: all its figures and GIFs, and no IWAE or quadrature, which take minutes to decode
    through convolutions on a 2-core CPU (the VAEs' conv runs are in sweeps/arch)."""
    key, out = "ae2", tmp_path / "conv"
    r = run_script(key, "--arch", "conv", "--epochs", "1", "--train-subset", "2000", *SCORED, "--quiet", "--out", out)
    assert r.returncode == 0, r.stderr
    first = read_metrics(out)
    assert first["arch"] == "conv" and (out / "model.pt").exists() and (out / "loss_curve.png").exists()
    r = run_script(key, "--arch", "conv", "--plots-only", *SCORED, "--quiet", "--out", out)
    assert r.returncode == 0, r.stderr
    again = read_metrics(out)
    assert again["test_mse"] == first["test_mse"] and again["plots_only"]
    r = run_script(key, "--plots-only", "--quiet", "--out", out)   # an MLP asked of a conv checkpoint
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "(conv)" in r.stderr


def test_model_pt_is_a_plain_state_dict_that_plain_torch_loads():
    """What README shows: five lines of plain torch, no code of this repo but the model's class."""
    from latentlab.models import build_model
    for spec in SPECS.values():
        ckpt = torch.load(REPO / spec.results_dir / "model.pt", weights_only=True)
        c = ckpt["config"]
        model = build_model(c["kind"], c["latent_dim"], c["arch"], c["hidden"], c.get("likelihood", "bernoulli"))
        model.load_state_dict(ckpt["state_dict"])
        assert c["kind"] == spec.model.name and c["latent_dim"] == spec.latent_dim
