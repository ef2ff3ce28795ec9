"""One training step of the MLP autoencoders with the backward pass written out (backpropagation,
Rumelhart, Hinton & Williams, 1986), instead of autograd under autocast.

Why: these models are small enough that the framework around the matmuls costs as much as the
matmuls. On a 2-core EPYC (VAE 32-D, batch 256, bf16, two alternated pairs) autograd + autocast took
5.1 and 4.4 ms a step, this step 4.2 and 4.0 ms, because
- the weights live in one flat float32 buffer (Adam's master copy) and are cast to the compute dtype
  in one copy per step, where autocast casts each weight and bias at every use;
- the weight gradients are written into one flat buffer and cast back in one copy;
- activations stay in the compute dtype through the MLP; the latent head and the loss run in float32,
  as they do under autocast;
- each layer's backward is two matmuls, a bias sum and a ReLU mask, with no graph to record.

It computes the gradient of the very objective ``losses.vae_loss`` / ``losses.ae_loss`` defines
(tests/test_backprop.py checks it against autograd in float64), for models whose encoder and decoder
are ``models.mlp`` stacks of Linear and ReLU layers.
"""
import weakref

import torch
from torch import nn

from .losses import bernoulli_nll, bernoulli_nll_grad, gaussian_kl, gaussian_kl_grad


_FLAT = weakref.WeakKeyDictionary()  # model → its flat parameter (one per model, made once)


def flat_parameter(model):
    """One float32 parameter holding all of ``model``'s, whose parameters become views into it
    (values, ``state_dict`` and checkpoints unchanged), with its ``.grad`` allocated once.

    Give it, not ``model.parameters()``, to the optimizer: Adam then updates one tensor (0.3 ms a
    step instead of 0.66 ms for the 12 separate ones, on a 2-core EPYC), and ``Step`` casts all
    weights in one copy. Calling it again returns the same parameter.
    """
    flat = _FLAT.get(model)
    if flat is not None:
        return flat
    params = list(model.parameters())
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    off = 0
    for p in params:
        p.data = flat.data[off:off + p.numel()].view_as(p)
        off += p.numel()
    _FLAT[model] = flat
    return flat


class Step:
    """``step(x, beta)`` does the forward and backward pass of one batch: it writes the gradient into
    ``flat_parameter(model).grad`` (for ``optimizer.step()``) and returns the (objective,
    reconstruction, KL) batch means in float32, as ``losses.vae_loss`` would, with the objective
    rec + ``beta``·KL.

    ``dtype`` is the compute precision: None (the parameters' own, float32) or torch.bfloat16.
    """

    def __init__(self, model, dtype=None):
        self.vae = model.kind == "vae"
        layers = [*model.encoder, *model.decoder]
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        own = sum(m.weight.numel() + m.bias.numel() for m in linears)
        if not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers) or \
                sum(p.numel() for p in model.parameters()) != own:
            raise ValueError("backprop.Step handles encoders and decoders of Linear and ReLU layers only")
        n_encoder = sum(isinstance(m, nn.Linear) for m in model.encoder)
        # indices of the encoder's and the decoder's linear layers
        self.encoder, self.decoder = list(range(n_encoder)), list(range(n_encoder, len(linears)))
        self.master = flat_parameter(model)
        storage = self.master.untyped_storage().data_ptr()
        if any(p.data.untyped_storage().data_ptr() != storage for p in model.parameters()):
            raise ValueError("the model's parameters were replaced after flat_parameter(model) (model.to?)")
        self.grad = self.master.grad
        self.dtype = dtype or self.master.dtype
        self.cast = self.dtype != self.master.dtype
        if not self.cast:   # compute on the parameters themselves and write the gradient directly
            self.low, self.low_grad = self.master.data, self.grad
        else:
            self.low = self.master.data.to(self.dtype)
            self.low_grad = torch.empty_like(self.grad, dtype=self.dtype)
        self.weights, self.biases = self._views(self.low, linears)
        self.weight_grads, self.bias_grads = self._views(self.low_grad, linears)

    @staticmethod
    def _views(flat, linears):
        """(weights, biases) of ``linears`` as views into ``flat``, laid out as the parameters are."""
        weights, biases, off = [], [], 0
        for m in linears:
            k = m.weight.numel()
            weights.append(flat[off:off + k].view_as(m.weight))
            biases.append(flat[off + k:off + k + m.out_features])
            off += k + m.out_features
        return weights, biases

    def _forward(self, layers, h):
        """Inputs of each layer (after its ReLU) and the last layer's output, in the compute dtype."""
        inputs = []
        for i in layers:
            inputs.append(h)
            h = torch.addmm(self.biases[i], h, self.weights[i].t())
            if i != layers[-1]:
                h = h.relu_()
        return inputs, h

    def _backward(self, layers, inputs, g):
        """Write the gradients of ``layers`` given ``g``, the gradient at the last one's output; returns
        the gradient at the first one's input (None for the encoder's, the data)."""
        for i in reversed(layers):
            torch.mm(g.t(), inputs[i - layers[0]], out=self.weight_grads[i])
            torch.sum(g, 0, out=self.bias_grads[i])
            if i == 0:
                return None
            g = torch.mm(g, self.weights[i])
            if i != layers[0]:
                g = torch.ops.aten.threshold_backward(g, inputs[i - layers[0]], 0)  # ReLU's mask
        return g

    def __call__(self, x, beta=1.0):
        if self.cast:
            self.low.copy_(self.master.data)
        n, dt = x.shape[0], self.dtype
        wide = torch.promote_types(dt, torch.float32)   # bf16 → float32; float64 stays
        enc_inputs, head = self._forward(self.encoder, x.to(dt))
        head = head.to(wide)
        if self.vae:
            mu, logvar = head.chunk(2, dim=-1)
            eps = torch.randn_like(mu)
            std = torch.exp(0.5 * logvar)
            z = mu + eps * std
        else:
            z = head
        dec_inputs, logits = self._forward(self.decoder, z.to(dt))
        logits = logits.to(wide)
        rec = bernoulli_nll(logits, x).mean()
        g_logits = bernoulli_nll_grad(logits, x).mul_(1.0 / n).to(dt)
        g_z = self._backward(self.decoder, dec_inputs, g_logits).to(wide)
        if self.vae:
            kl = gaussian_kl(mu, logvar).sum(-1).mean()
            g_mu, g_logvar = gaussian_kl_grad(mu, logvar)
            g_head = torch.cat((g_z + g_mu * (beta / n), g_z * eps * std * 0.5 + g_logvar * (beta / n)), -1)
        else:
            kl = torch.zeros_like(rec)
            g_head = g_z
        self._backward(self.encoder, enc_inputs, g_head.to(dt))
        if self.cast:
            self.grad.copy_(self.low_grad)
        return rec + beta * kl, rec, kl
