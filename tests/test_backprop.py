"""The hand-written training step against autograd: the same objective, the same gradient."""
import pytest
import torch
from torch import nn

from conftest import small_mnist
from latentlab.backprop import Step, flat_parameter
from latentlab.losses import ae_loss, vae_loss
from latentlab.models import build_model
from latentlab.training import make_optimizer


def autograd_step(model, x, beta):
    """The objective as losses.py defines it, differentiated by autograd."""
    if model.kind == "vae":
        logits, mu, logvar = model(x)
        loss, rec, kl = vae_loss(logits, x, mu, logvar, beta)
    else:
        logits, _ = model(x)
        loss, rec, kl = ae_loss(logits, x)
    loss.backward()
    return [t.detach() for t in (loss, rec, kl)], torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("kind,latent_dim,beta", [("vae", 2, 1.0), ("vae", 32, 0.3), ("ae", 2, 1.0), ("ae", 32, 1.0)])
def test_the_step_is_autograds_gradient_of_the_objective_in_float64(kind, latent_dim, beta):
    x = small_mnist(64, 1).x_train.double()
    torch.manual_seed(0)
    model = build_model(kind, latent_dim, hidden=(48, 24)).double()
    reference = build_model(kind, latent_dim, hidden=(48, 24)).double()
    reference.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    losses = Step(model)(x, beta)
    torch.manual_seed(1)   # the same reparameterisation noise
    expected, grad = autograd_step(reference, x, beta)
    for got, want in zip(losses, expected):
        assert float(got) == pytest.approx(float(want), rel=1e-12, abs=1e-12)
    assert torch.allclose(flat_parameter(model).grad, grad, rtol=1e-9, atol=1e-13)
    assert float(grad.abs().max()) > 1e-3   # a real gradient, not zeros on both sides


def test_bf16_computes_the_float32_gradient_to_bf16_rounding():
    x = small_mnist(256, 1).x_train
    torch.manual_seed(0)
    model = build_model("vae", 32)
    torch.manual_seed(1)
    loss16, rec16, kl16 = Step(model, torch.bfloat16)(x)
    assert (loss16.dtype, rec16.dtype, kl16.dtype) == (torch.float32,) * 3   # the latent and loss in float32
    g16 = flat_parameter(model).grad.clone()
    torch.manual_seed(1)
    loss32 = Step(model)(x)[0]
    g32 = flat_parameter(model).grad
    assert float(loss16) == pytest.approx(float(loss32), rel=1e-2)
    assert float(loss16) != float(loss32)   # really computed in bf16
    cos = torch.nn.functional.cosine_similarity(g16, g32, dim=0)
    assert cos > 0.99


def test_parameters_become_views_of_the_one_tensor_the_optimizer_updates():
    torch.manual_seed(0)
    model = build_model("ae", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, 1e-3, 1, 1)
    flat = flat_parameter(model)
    assert opt.param is flat and flat_parameter(model) is flat
    assert flat.numel() == sum(p.numel() for p in model.parameters())
    state = model.state_dict()
    assert list(state) == list(before) and all(torch.equal(state[k], before[k]) for k in before)
    Step(model)(small_mnist(128, 1).x_train)
    opt.step()   # moves the model's own parameters
    assert not torch.equal(model.encoder[0].weight, before["encoder.0.weight"])
    fresh = build_model("ae", 2)
    fresh.load_state_dict(model.state_dict())   # checkpoints stay per-layer
    assert torch.equal(fresh.decoder[-1].bias, model.decoder[-1].bias)


def test_the_step_refuses_what_it_cannot_differentiate():
    model = build_model("ae", 2)
    model.encoder[1] = nn.Tanh()
    with pytest.raises(ValueError, match="Linear and ReLU"):
        Step(model)
    model = build_model("ae", 2)
    flat_parameter(model)
    model.double()   # parameters replaced after flattening: the optimizer would update stale ones
    with pytest.raises(ValueError, match="replaced"):
        Step(model)


def test_in_bf16_the_aes_step_is_autograd_under_autocast_bit_for_bit():
    """Same casts at the same places (bf16 matmuls, float32 loss on the bf16 logits), same gradient."""
    x = small_mnist(256, 1).x_train
    torch.manual_seed(0)
    model = build_model("ae", 32)
    reference = build_model("ae", 32)
    reference.load_state_dict(model.state_dict())
    _, rec, _ = Step(model, torch.bfloat16)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (_, expected, _), grad = autograd_step(reference, x, 1.0)
    assert torch.equal(rec, expected) and torch.equal(flat_parameter(model).grad, grad)
