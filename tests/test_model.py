"""CathNet: backbone strides, output shapes, input checks, initialisation, size, export paths."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from cathtrack.model import CathNet, ModelConfig, build_model, summary
from cathtrack.model.backbones import BACKBONES, build_backbone

# torch.jit is deprecated since torch 2.11 but the .ts path must keep working on the pinned torch.
JIT_DEPRECATED = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
LITE = 0.25  # width multiplier that keeps these tests fast


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _lite(backbone: str = "resnet34") -> CathNet:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, width=LITE)).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_features_have_strides_4_8_16(backbone):
    encoder = build_backbone(backbone, in_channels=1, width=LITE)
    features = encoder(torch.rand(2, 1, 64, 96))
    assert [tuple(f.shape) for f in features] == [
        (2, channels, 64 // stride, 96 // stride)
        for channels, stride in zip(encoder.channels, (4, 8, 16), strict=True)
    ]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_outputs_are_full_resolution_mask_and_stride_4_maps(backbone):
    with torch.no_grad():
        segmentation, heatmap, size = _lite(backbone)(torch.rand(2, 1, 64, 96))
    assert segmentation.shape == (2, 1, 64, 96)
    assert heatmap.shape == (2, 1, 16, 24)
    assert size.shape == (2, 2, 16, 24)
    assert bool(((heatmap > 0) & (heatmap < 1)).all())  # probabilities


def test_input_size_not_multiple_of_32_is_a_clear_error():
    model = _lite()
    with pytest.raises(ValueError, match="multiples of 32, got 48x64"):
        model(torch.rand(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"expects input \(B, 1, H, W\), got \[1, 3, 64, 64\]"):
        model(torch.rand(1, 3, 64, 64))


def test_initialisation_kaiming_bn_ones_and_center_prior():
    model = _lite()
    bias = model.center_head.out.bias.item()
    assert bias == pytest.approx(-math.log(9), abs=1e-6)  # -2.197, CenterNet's prior 0.1
    with torch.no_grad():
        _, heatmap, _ = model(torch.rand(1, 1, 64, 64))
    assert heatmap.mean().item() == pytest.approx(0.1, abs=0.01)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert bool((module.weight == 1).all()) and bool((module.bias == 0).all())
    conv = model.backbone.layer3[1].conv1  # 3x3, fan_out = 9 * out_channels
    expected_std = math.sqrt(2 / (9 * conv.out_channels))
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)


def test_resnet34_has_about_10m_parameters_and_12_gflops():
    row = summary(ModelConfig(), size=256)
    # The paper's ~10 M parameters / ~11.8 GFLOPs per 256x256 frame (GFLOPs = 2 x MACs).
    assert 9.5e6 < row["parameters"] < 10.5e6
    assert 10.0 < row["gflops"] < 12.5


def test_config_json_round_trip_and_unknown_keys():
    config = ModelConfig(backbone="vgg16", width=0.5, decoder_channels=(96, 48))
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ValueError, match="unknown ModelConfig keys: colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": 3})
    with pytest.raises(ValueError, match="unknown backbone"):
        dataclasses.replace(config, backbone="resnet101")


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_torch_export_round_trip(tmp_path, strict):
    model = _lite()
    image = torch.rand(1, 1, 64, 64)
    program = torch.export.export(model, (image,), strict=strict)
    path = tmp_path / "cathnet.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        expected = model(image)
        actual = loaded(image)
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@JIT_DEPRECATED
def test_torchscript_round_trip(tmp_path):
    model = _lite()
    path = tmp_path / "cathnet.ts"
    torch.jit.save(torch.jit.script(model), path)
    loaded = torch.jit.load(path)
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = model(image)
        actual = loaded(image)
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # TorchScript re-raises the ValueError as torch.jit.Error carrying the same message.
    with pytest.raises(torch.jit.Error, match="ValueError: CathNet input height and width must"):
        loaded(torch.rand(1, 1, 64, 40))
