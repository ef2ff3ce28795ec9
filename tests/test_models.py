import pytest
import torch

from latentlab import UserError
from latentlab.checkpoints import load_model, load_run, save_model
from latentlab.cli import ModelSpec
from latentlab.models import VAE, AutoEncoder, LeNet, build_model
from latentlab.training import TrainState


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("latent", [2, 32])
def test_shapes(kind, latent):
    model = build_model(kind, latent)
    x = torch.rand(5, 784)
    assert model.encode(x).shape == (5, latent)
    assert model.decode(torch.randn(5, latent)).shape == (5, 784)
    out = model(x)
    assert out[0].shape == (5, 784)
    if kind == "vae":
        assert out[1].shape == out[2].shape == (5, latent)


def test_ae_code_layer_is_linear():
    # the original's ReLU on the code would make every code non-negative
    model = build_model("ae", 2)
    assert isinstance(model.encoder[-1], torch.nn.Linear)
    assert (build_model("ae", 2).encode(torch.rand(256, 784)) < 0).any()


def test_lenet_shapes():
    net = LeNet()
    assert net(torch.rand(3, 784)).shape == (3, 10)
    assert net.features(torch.rand(3, 784)).shape == (3, 84)


def test_checkpoint_round_trip(tmp_path):
    model = build_model("vae", 2).eval()
    config = {"kind": "vae", "latent_dim": 2, "hidden": [512, 256], "epochs": 1}
    frames = [torch.randn(5, 2).half() for _ in range(2)]
    index = torch.tensor([9, 3, 7, 1, 4])
    save_model(tmp_path, model, config,
               TrainState(history=[{"epoch": 1}], code_frames=frames, frame_index=index))
    loaded, ckpt = load_model(tmp_path / "model.pt")
    x = torch.rand(4, 784)
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert ckpt["history"] == [{"epoch": 1}]
    other = ModelSpec("x.py", AutoEncoder, 2, "r", (), 1, 1, 1.0)
    with pytest.raises(UserError, match="not this run's AE"):
        load_model(tmp_path / "model.pt", other)
    with pytest.raises(UserError, match="not this run's VAE .mlp, continuous-bernoulli."):
        load_model(tmp_path / "model.pt", ModelSpec("x.py", VAE, 2, "r", (), 1, 1, 1.0), likelihood="continuous-bernoulli")
    # the per-epoch codes come back with the indices of the test images they belong to
    same = ModelSpec("x.py", VAE, 2, "r", (), 1, 1, 1.0)
    _, _, state = load_run(tmp_path, same, "cpu")
    assert torch.equal(state.frame_index, index)
    assert all(torch.equal(a, b) for a, b in zip(state.code_frames, frames)) and len(state.code_frames) == 2


def test_another_likelihood_writes_beside_the_default_folder():
    from conftest import SPECS
    spec = SPECS["vae2"]
    assert spec.results_for("mlp") == spec.results_dir
    assert spec.results_for("mlp", "continuous-bernoulli") == spec.results_dir + "_continuous-bernoulli"
    assert spec.results_for("conv", "continuous-bernoulli") == spec.results_dir + "_conv_continuous-bernoulli"
    assert build_model("ae", 2, likelihood="continuous-bernoulli").likelihood.name == "continuous-bernoulli"
    with pytest.raises(ValueError, match="unknown likelihood"):
        build_model("vae", 2, likelihood="gaussian")
