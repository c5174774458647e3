"""Building blocks with the official code's initialisation (spec §4, §5.3, §7.1)."""
from __future__ import annotations

import math

import torch
from torch import nn

RELU_GAIN = math.sqrt(2.0)  # SiLU is initialised as if it were ReLU


def kaiming_uniform_gain_(weight: torch.Tensor, gain: float) -> None:
    """Uniform in ±√3·gain/√fan_in."""
    fan_in = weight.shape[1] * (weight[0][0].numel() if weight.dim() > 2 else 1)
    bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
    with torch.no_grad():
        weight.uniform_(-bound, bound)


def init_layer_(layer: nn.Module, gain: float, bias: float = 0.0) -> nn.Module:
    kaiming_uniform_gain_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.constant_(layer.bias, bias)
    return layer


class MLP(nn.Module):
    """Linear layers with SiLU between them.

    pre_activation: SiLU on the input (dynamics heads); post_activation: SiLU on the output (embeddings);
    dropout after every hidden activation. Weights: gain √2 where a SiLU follows, gain 1 on a final
    layer without activation; biases 0, the final one then set to `final_bias`.
    """

    def __init__(self, in_dim: int, hidden_dims: tuple[int, ...], out_dim: int, *, dropout: float = 0.0,
                 pre_activation: bool = False, post_activation: bool = False, final_bias: float = 0.0):
        super().__init__()
        dims = (in_dim, *hidden_dims, out_dim)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        for layer in self.layers[:-1]:
            init_layer_(layer, RELU_GAIN)
        init_layer_(self.layers[-1], RELU_GAIN if post_activation else 1.0, final_bias)
        self.pre_activation = pre_activation
        self.post_activation = post_activation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_activation:
            x = self.act(x)
        for layer in self.layers[:-1]:
            x = self.dropout(self.act(layer(x)))
        x = self.layers[-1](x)
        return self.act(x) if self.post_activation else x


def orthogonal_mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Actor / critic MLP: SiLU, no norm, orthogonal init (gain √2 hidden, 1 output), zero biases."""
    dims = (in_dim, *hidden_dims, out_dim)
    modules: list[nn.Module] = []
    for index, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        linear = nn.Linear(a, b)
        last = index == len(dims) - 2
        nn.init.orthogonal_(linear.weight, gain=1.0 if last else RELU_GAIN)
        nn.init.zeros_(linear.bias)
        modules.append(linear)
        if not last:
            modules.append(nn.SiLU())
    return nn.Sequential(*modules)
