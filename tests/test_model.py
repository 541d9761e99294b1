"""CathNet: backbone strides, output shapes, input checks, initialisation, size, export paths,
heatmap strides 4, 2 and 1."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from cathtrack.coordinates import HEATMAP_STRIDES, OUTPUT_STRIDE
from cathtrack.data.synth import preset, render
from cathtrack.model import CathNet, ModelConfig, build_model, summary
from cathtrack.model.backbones import BACKBONES, build_backbone
from cathtrack.model.net import CENTER_PRIOR, center_prior
from cathtrack.train.losses import focal_loss
from cathtrack.train.targets import collate_batch

# torch.jit is deprecated since torch 2.11 but the .ts path must keep working on the pinned torch.
JIT_DEPRECATED = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
LITE = 0.25  # width multiplier that keeps these tests fast


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _lite(backbone: str = "resnet34", stride: int = 4) -> CathNet:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, width=LITE, heatmap_stride=stride)).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_features_have_strides_4_8_16(backbone):
    encoder = build_backbone(backbone, in_channels=1, width=LITE)
    features = encoder(torch.rand(2, 1, 64, 96))
    # (stride 2, the skip of the stride-2 decoder stage, comes first)
    assert [tuple(f.shape) for f in features[1:]] == [
        (2, channels, 64 // stride, 96 // stride)
        for channels, stride in zip(encoder.channels[1:], (4, 8, 16), strict=True)
    ]
    assert tuple(features[0].shape) == (2, encoder.channels[0], 32, 48)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_outputs_are_full_resolution_mask_and_stride_4_maps(backbone):
    with torch.no_grad():
        segmentation, heatmap, size = _lite(backbone)(torch.rand(2, 1, 64, 96))
    assert segmentation.shape == (2, 1, 64, 96)
    assert heatmap.shape == (2, 1, 16, 24)
    assert size.shape == (2, 2, 16, 24)
    assert bool(((heatmap > 0) & (heatmap < 1)).all())  # probabilities


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("stride", [2, 1])
def test_finer_heatmap_strides_give_finer_maps_and_the_same_mask(backbone, stride):
    model = _lite(backbone, stride)
    assert model.output_stride == stride
    with torch.no_grad():
        segmentation, heatmap, size = model(torch.rand(2, 1, 64, 96))
    assert segmentation.shape == (2, 1, 64, 96)
    assert heatmap.shape == (2, 1, 64 // stride, 96 // stride)
    assert size.shape == (2, 2, 64 // stride, 96 // stride)
    assert bool(((heatmap > 0) & (heatmap < 1)).all())
    # the heads on the fine stages are as narrow as the stage (docs/training.md, Heatmap stride)
    width = model.config.fine_channels[0 if stride == 2 else 1]
    for head in (model.center_head, model.size_head):
        assert head.body[0].in_channels == head.body[0].out_channels == width
    assert model.segmentation_head.body[0].out_channels == model.config.head_channels


def test_a_stride_4_model_is_the_papers_network_key_for_key():
    paper = _lite()
    assert paper.output_stride == OUTPUT_STRIDE == 4
    keys = set(paper.state_dict())
    assert not [key for key in keys if key.startswith(("decoder_stride2", "decoder_stride1"))]
    for stride in (2, 1):
        finer = set(_lite(stride=stride).state_dict())
        assert any(key.startswith("decoder_stride2.") for key in finer)
        assert any(key.startswith("decoder_stride1.") for key in finer) == (stride == 1)
        # everything up to the stride-4 decoder and the segmentation head is shared
        shared = {k for k in keys if not k.startswith(("center_head.", "size_head."))}
        assert shared <= finer


def test_the_stride_4_forward_equals_the_papers_order_of_operations():
    """The backbone now also returns its stride-2 feature: a stride-4 model must compute exactly
    what the paper's decoder did (the shipped weights load and give the same outputs)."""
    model = _lite()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        backbone = model.backbone
        stride4 = backbone.layer1(backbone.stem(image))  # the stem with its max-pool, as before
        stride16 = backbone.layer3(backbone.layer2(stride4))
        features = model.decoder_stride4(
            model.decoder_stride8(
                model.attention(model.projection(stride16)), backbone.layer2(stride4)
            ),
            stride4,
        )
        expected = torch.sigmoid(model.center_head(features))
        _, heatmap, _ = model(image)
    torch.testing.assert_close(heatmap, expected, atol=0, rtol=0)


def test_input_size_not_multiple_of_32_is_a_clear_error():
    model = _lite()
    with pytest.raises(ValueError, match="multiples of 32, got 48x64"):
        model(torch.rand(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"expects input \(B, 1, H, W\), got \[1, 3, 64, 64\]"):
        model(torch.rand(1, 3, 64, 64))


def _first_step_centre_gradient(stride: int, prior: float) -> torch.Tensor:
    """Focal-loss gradient on the centre head's output weights at the first step, 4 frames."""
    samples = [render(preset("clinical", size=128), seed=seed) for seed in range(4)]
    batch = collate_batch(samples, stride=stride)
    model = _lite(stride=stride).train()
    torch.nn.init.constant_(model.center_head.out.bias, -math.log((1 - prior) / prior))
    _, heatmap, _ = model(batch["image"])
    focal_loss(heatmap, batch["heatmap"]).mean().backward()
    return model.center_head.out.weight.grad.flatten()


@pytest.mark.parametrize("stride", HEATMAP_STRIDES)
def test_centre_prior_lets_the_first_step_raise_some_output_weights(stride):
    # The head's inputs are ReLU features (>= 0): a weight whose gradient is negative grows, and
    # only such weights can make a peak rise above sigmoid(bias). At CenterNet's 0.1 the 16x more
    # negative cells of a stride-1 map push every weight down (the trap center_prior avoids).
    gradient = _first_step_centre_gradient(stride, center_prior(stride))
    assert (gradient < 0).sum().item() >= gradient.numel() // 4
    if stride == 1:
        assert (_first_step_centre_gradient(stride, CENTER_PRIOR) < 0).sum().item() == 0


@pytest.mark.parametrize("stride", HEATMAP_STRIDES)
def test_initialisation_kaiming_bn_ones_and_center_prior(stride):
    model = _lite(stride=stride)
    prior = {4: 0.1, 2: 0.025, 1: 0.00625}[stride]  # CenterNet's 0.1 at stride 4, x (s / 4)^2
    bias = model.center_head.out.bias.item()
    assert bias == pytest.approx(-math.log((1 - prior) / prior), abs=1e-6)
    with torch.no_grad():
        _, heatmap, _ = model(torch.rand(1, 1, 64, 64))
    assert heatmap.mean().item() == pytest.approx(prior, rel=0.1)
    for head in (model.segmentation_head, model.center_head, model.size_head):
        assert head.out.weight.std().item() < 2e-3
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


def test_finer_strides_cost_little_more_than_the_papers_model():
    paper = summary(ModelConfig(), size=256)["gflops"]
    for stride in (2, 1):
        finer = summary(ModelConfig(heatmap_stride=stride), size=256)["gflops"]
        assert 0.9 * paper < finer < 1.1 * paper, (stride, finer, paper)


def test_heatmap_stride_is_stored_validated_and_defaults_to_4_for_old_files():
    assert ModelConfig().heatmap_stride == 4 and ModelConfig().fine_channels == (32, 8)
    config = ModelConfig(heatmap_stride=1, fine_channels=[24, 16])
    values = json.loads(json.dumps(config.to_dict()))
    assert values["heatmap_stride"] == 1 and values["fine_channels"] == [24, 16]
    assert ModelConfig.from_dict(values) == config
    # a model dict written before strides 2 and 1 existed (models/*.json) is a stride-4 model
    old = {
        k: v
        for k, v in ModelConfig().to_dict().items()
        if k not in ("heatmap_stride", "fine_channels")
    }
    assert ModelConfig.from_dict(old).heatmap_stride == 4
    for bad in (3, 8, 0, "4", 4.0, True):
        with pytest.raises(ValueError, match=r"heatmap_stride must be one of 4, 2, 1, got"):
            ModelConfig(heatmap_stride=bad)
    with pytest.raises(ValueError, match=r"fine_channels needs 2 widths \(strides 2, 1\)"):
        ModelConfig(fine_channels=(32,))
    with pytest.raises(ValueError, match="channel counts must be positive"):
        ModelConfig(fine_channels=(32, 0))


def test_config_json_round_trip_and_unknown_keys():
    config = ModelConfig(backbone="vgg16", width=0.5, decoder_channels=(96, 48))
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ValueError, match="unknown ModelConfig keys: colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": 3})
    with pytest.raises(ValueError, match="unknown backbone"):
        dataclasses.replace(config, backbone="resnet101")


@pytest.mark.parametrize("stride", HEATMAP_STRIDES)
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_torch_export_round_trip(tmp_path, strict, stride):
    model = _lite(stride=stride)
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
    assert actual[1].shape == (1, 1, 64 // stride, 64 // stride)
    assert actual[2].shape == (1, 2, 64 // stride, 64 // stride)


@JIT_DEPRECATED
@pytest.mark.parametrize("stride", HEATMAP_STRIDES)
def test_torchscript_round_trip(tmp_path, stride):
    model = _lite(stride=stride)
    path = tmp_path / "cathnet.ts"
    torch.jit.save(torch.jit.script(model), path)
    loaded = torch.jit.load(path)
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = model(image)
        actual = loaded(image)
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert actual[1].shape == (1, 1, 64 // stride, 64 // stride)
    assert actual[2].shape == (1, 2, 64 // stride, 64 // stride)
    assert loaded.output_stride == stride
    # TorchScript re-raises the ValueError as torch.jit.Error carrying the same message.
    with pytest.raises(torch.jit.Error, match="ValueError: CathNet input height and width must"):
        loaded(torch.rand(1, 1, 64, 40))
