"""LPIPS-VGG16 perceptual distance (Zhang et al. 2018, v0.1 "lin" weights), built in the project.

Network: scaling layer ((x - shift) / scale, x in [-1, 1]) → torchvision VGG16 `features` (13 convs)
tapped after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 → channel-normalise each feature map →
squared difference → per-layer `lin` head (Dropout(0.5) then Conv1x1(C, 1, bias=False)) → spatial
mean → sum over the 5 layers. Output [B, 1, 1, 1]. All weights frozen.

Weights come from two standard files in a weights directory (see `weights_dir`):
- `vgg16-397923af.pth`: torchvision's VGG16 ImageNet state dict (keys `features.N.weight/bias`);
- `vgg.pth`: LPIPS v0.1 linear heads (keys `lin0.model.1.weight` … `lin4.model.1.weight`), the file
  shipped by richzhang/PerceptualSimilarity and taming-transformers.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

VGG_FILE = "vgg16-397923af.pth"
LPIPS_FILE = "vgg.pth"
VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
WEIGHTS_ENV = "WMBENCH_WEIGHTS_DIR"

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_CHANNELS = (64, 128, 256, 512, 512)


def weights_dir(configured: str = "") -> Path:
    """The configured directory, else $WMBENCH_WEIGHTS_DIR, else ~/.cache/wmbench/weights."""
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get(WEIGHTS_ENV) or "~/.cache/wmbench/weights").expanduser()


def how_to_get(directory: Path) -> str:
    return (f"download {VGG_URL} as {directory / VGG_FILE} and {LPIPS_URL} as {directory / LPIPS_FILE} "
            f"(or point the config field `weights_dir` / env var {WEIGHTS_ENV} at a directory holding both)")


def missing_files(directory: Path) -> list[Path]:
    return [directory / name for name in (VGG_FILE, LPIPS_FILE) if not (directory / name).is_file()]


def vgg16_features() -> nn.Sequential:
    """torchvision's `vgg16().features` layout (same indices, so its state-dict keys load as-is)."""
    layers: list[nn.Module] = []
    previous = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(previous, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            previous = int(item)
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # index 30, unused by LPIPS but part of the layout
    return nn.Sequential(*layers)


class _LinHead(nn.Module):
    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """Frozen LPIPS-VGG16. Inputs [B, 3, H, W] in [-1, 1]; output [B, 1, 1, 1]."""

    def __init__(self, dropout: float = 0.5):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = vgg16_features()
        for index, channels in enumerate(_CHANNELS):
            self.add_module(f"lin{index}", _LinHead(channels, dropout))
        self.requires_grad_(False)

    @classmethod
    def from_directory(cls, directory: Path, dropout: float = 0.5) -> "LPIPS":
        """Builds the network and loads both checkpoint files; errors name the file and the key."""
        missing = missing_files(directory)
        if missing:
            raise FileNotFoundError(f"LPIPS weights missing: {', '.join(map(str, missing))}; {how_to_get(directory)}")
        model = cls(dropout)
        model.load_vgg(directory / VGG_FILE)
        model.load_lin(directory / LPIPS_FILE)
        return model

    def load_vgg(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = self.features.state_dict()
        features = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
        _check_keys(path, wanted, features, prefix="features.")
        self.features.load_state_dict(features)

    def load_lin(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {k: v for k, v in self.state_dict().items() if k.startswith("lin")}
        lins = {key: value for key, value in state.items() if key.startswith("lin")}
        _check_keys(path, wanted, lins, prefix="")
        self.load_state_dict(lins, strict=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features[: _TAPS[-1] + 1]):
            x = layer(x)
            if index in _TAPS:
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self._taps((x - self.shift) / self.scale)
        fy = self._taps((y - self.shift) / self.scale)
        total = 0.0
        for index, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit(a) - _unit(b)).pow(2)
            total = total + getattr(self, f"lin{index}")(diff).mean(dim=(2, 3), keepdim=True)
        return total


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _check_keys(path: Path, wanted: dict, found: dict, prefix: str) -> None:
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise KeyError(f"{path}: missing key(s) {[prefix + k for k in missing]}")
    for key, tensor in wanted.items():
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{path}: key {prefix + key} has shape {tuple(found[key].shape)}, "
                             f"expected {tuple(tensor.shape)}")
