import pytest
import torch

from agents.common import lpips as lp

torch.set_num_threads(1)


def _write_fake_checkpoints(directory, seed=0):
    """Files with the published key names and shapes (random values), as torchvision / LPIPS ship them."""
    g = torch.Generator().manual_seed(seed)
    vgg = {f"features.{k}": torch.randn(v.shape, generator=g) * 0.05 for k, v in lp.vgg16_features().state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # extra torchvision keys are ignored
    torch.save(vgg, directory / lp.VGG_FILE)
    lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(lins, directory / lp.LPIPS_FILE)
    return vgg, lins


def test_lpips_parameter_count_and_layout():
    model = lp.LPIPS()
    assert sum(p.numel() for p in model.parameters()) == 14_716_160
    assert not any(p.requires_grad for p in model.parameters())
    keys = set(model.state_dict())
    assert {"features.28.weight", "lin0.model.1.weight", "lin4.model.1.weight"} <= keys


def test_lpips_loads_published_key_layout(tmp_path):
    vgg, lins = _write_fake_checkpoints(tmp_path)
    model = lp.LPIPS.from_directory(tmp_path).eval()
    torch.testing.assert_close(model.features[28].weight, vgg["features.28.weight"])
    torch.testing.assert_close(model.lin3.model[1].weight, lins["lin3.model.1.weight"])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    d_xy = model(x, y)
    assert d_xy.shape == (2, 1, 1, 1)
    assert torch.allclose(model(x, x), torch.zeros(2, 1, 1, 1))
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, model(y, x))


def test_lpips_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth.*download"):
        lp.LPIPS.from_directory(tmp_path)
    _write_fake_checkpoints(tmp_path)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, tmp_path / lp.LPIPS_FILE)
    with pytest.raises(KeyError, match="lin1.model.1.weight"):
        lp.LPIPS.from_directory(tmp_path)


def test_weights_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(lp.WEIGHTS_ENV, str(tmp_path))
    assert lp.weights_dir("") == tmp_path
    assert lp.weights_dir("/x/y") == lp.Path("/x/y")
    monkeypatch.delenv(lp.WEIGHTS_ENV)
    assert lp.weights_dir("").parts[-3:] == (".cache", "wmbench", "weights")
