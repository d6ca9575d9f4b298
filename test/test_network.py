"""SynergyNet: config, shapes for every backbone x variant, gradients, head swap, weights."""
import pytest
import torch

from synergy_ros.core.errors import SynergyError
from synergy_ros.network import (ENCODERS, PARAMETER_GROUPS, SHARING_MODES, NetworkConfig,
                                 ResNetEncoder, SynergyOutput, build_network, decoder_plan,
                                 load_encoder_weights)
from synergy_ros.network.decoder import SharingUnit, unpool2x


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_network({"encoder": "resnet18", "num_classes": 5})


# ---------------------------------------------------------------- config
def test_config_round_trip_and_defaults():
    config = NetworkConfig(encoder="resnet18", num_classes=21, sharing="branch_out",
                           shared_layers=2, sharing_granularity="channel")
    assert NetworkConfig.from_dict(config.to_dict()) == config
    assert NetworkConfig().encoder == "resnet50"  # the paper's backbone
    assert NetworkConfig().sharing == "lateral"
    assert NetworkConfig.from_dict({"num_classes": 19}).num_classes == 19


def test_config_unknown_key_lists_valid_keys():
    with pytest.raises(SynergyError) as info:
        NetworkConfig.from_dict({"encoder": "resnet18", "backbone": "x"})
    assert "backbone" in str(info.value) and "sharing_granularity" in str(info.value)


@pytest.mark.parametrize("bad", [{"encoder": "vgg16"}, {"sharing": "cross_stitch"},
                                 {"num_classes": 0}, {"shared_layers": 5},
                                 {"decoder_width": 100}, {"max_depth": -1.0},
                                 {"sharing_granularity": "pixel"}, {"upconv": "deconv"},
                                 {"max_depth": "10"}, {"frozen_bn": "yes"}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(SynergyError, match=next(iter(bad))):
        build_network(bad)


# ---------------------------------------------------------------- shapes, variants
@pytest.mark.parametrize("sharing", SHARING_MODES)
@pytest.mark.parametrize("encoder", ENCODERS)  # each < 1 s at 64x64 here
def test_shapes_every_backbone_and_variant(encoder, sharing):
    torch.manual_seed(0)
    model = build_network({"encoder": encoder, "sharing": sharing, "num_classes": 7,
                           "shared_layers": 2})
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), return_attention=True)
    assert isinstance(out, SynergyOutput)
    assert out.depth.shape == (1, 1, 64, 64)
    assert out.semantic_logits.shape == (1, 7, 64, 64)
    assert out.attention.shape == (1, 1, 4, 4)
    assert float(out.depth.min()) > 0 and float(out.depth.max()) < 10.0
    assert torch.isfinite(out.semantic_logits).all()
    assert bool((out.attention >= 0).all())


@pytest.mark.parametrize("sharing", SHARING_MODES)
def test_upprojection_variant_shapes(sharing):
    model = build_network({"encoder": "resnet18", "sharing": sharing, "upconv": "upproj",
                           "num_classes": 3})
    out = model(torch.randn(2, 3, 64, 64))
    assert out.depth.shape == (2, 1, 64, 64) and out.semantic_logits.shape == (2, 3, 64, 64)
    assert out.attention is None


def test_unpool_inserts_zeros():
    x = torch.arange(4.0).view(1, 1, 2, 2)
    expected = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 0], [2, 0, 3, 0], [0, 0, 0, 0.0]])
    assert torch.equal(unpool2x(x)[0, 0], expected)


def test_odd_sizes_are_padded_and_cropped_back(small_model):
    small_model.eval()
    with torch.no_grad():
        out = small_model(torch.randn(1, 3, 50, 70), return_attention=True)
    assert out.depth.shape == (1, 1, 50, 70)
    assert out.semantic_logits.shape == (1, 5, 50, 70)
    assert out.attention.shape == (1, 1, 4, 5)  # ceil(50/16), ceil(70/16)


@pytest.mark.parametrize("image, problem", [
    (torch.randn(3, 64, 64), "(B, 3, H, W)"),
    (torch.randn(1, 4, 64, 64), "(B, 3, H, W)"),
    (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "float"),
    (torch.randn(1, 3, 64, 64, dtype=torch.float64), "does not match"),
])
def test_bad_input_gives_clear_error(small_model, image, problem):
    with pytest.raises(SynergyError) as info:
        small_model(image)
    assert problem in str(info.value)


def test_decoder_plans_match_tables_1_and_2():
    plan = decoder_plan(NetworkConfig(sharing="lateral"))
    assert plan.shared == (False,) * 4
    assert all(u.to_depth and u.to_semantic for u in plan.units)
    plan = decoder_plan(NetworkConfig(sharing="separate"))
    assert not any(u.to_depth or u.to_semantic for u in plan.units)
    for first in ("semantic", "depth"):  # the cascade joins the branches after their decoders
        plan = decoder_plan(NetworkConfig(sharing="cascaded", cascade_first=first))
        assert not any(u.to_depth or u.to_semantic for u in plan.units)
    assert decoder_plan(NetworkConfig(sharing="branch_out", shared_layers=3)).shared == (
        True, True, True, False)
    assert decoder_plan(NetworkConfig(sharing="merge_in", shared_layers=1)).shared == (
        False, False, False, True)


def test_sharing_unit_formula_and_granularity():
    unit = SharingUnit(2, "scalar", True, True, cross_init=0.1)
    with torch.no_grad():
        unit.phi_d.fill_(0.5)
        unit.phi_s.fill_(0.25)
        unit.gamma_s.fill_(-0.5)
        unit.gamma_d.fill_(2.0)
    dep = torch.full((1, 2, 1, 1), 2.0)
    sem = torch.full((1, 2, 1, 1), 4.0)
    new_dep, new_sem = unit(dep, sem)
    assert torch.allclose(new_dep, torch.full_like(dep, 1.5 * 2 + 0.25 * 4))
    assert torch.allclose(new_sem, torch.full_like(sem, 0.5 * 4 + 2.0 * 2))
    channel = SharingUnit(8, "channel", True, False, cross_init=0.1)
    assert channel.phi_s.shape == (1, 8, 1, 1) and not hasattr(channel, "gamma_d")
    assert torch.allclose(channel.phi_s, torch.full((1, 8, 1, 1), 0.1))


def test_decoder_channels_follow_the_paper_for_resnet50():
    model = build_network({"encoder": "resnet50"})
    assert model.conv2[0].in_channels == 2048 and model.conv2[0].out_channels == 1024
    assert model.decoder.channels == [512, 256, 128, 64]
    assert model.depth_head.in_channels == 64 and model.semantic_head.out_channels == 40


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("sharing", SHARING_MODES)
def test_gradients_reach_both_branches_and_sharing(sharing):
    torch.manual_seed(0)
    model = build_network({"encoder": "resnet18", "sharing": sharing, "num_classes": 3,
                           "sharing_granularity": "channel"})
    out = model(torch.randn(2, 3, 64, 64))
    (out.depth.mean() + out.semantic_logits.logsumexp(1).mean()).backward()
    groups = model.parameter_groups()
    empty = {"lateral": {"sharing"}, "separate": {"sharing", "depth_sharing", "semantic_sharing"},
             "cascaded": {"sharing", "depth_sharing", "semantic_sharing"},
             "merge_in": {"depth_sharing", "semantic_sharing"},
             "branch_out": {"depth_sharing", "semantic_sharing"}}[sharing]
    for name, params in groups.items():
        if name in empty:
            assert params == [], f"group {name} should be empty for {sharing}"
            continue
        assert params, f"group {name} is empty for {sharing}"
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params), name
        assert any(float(p.grad.abs().sum()) > 0 for p in params), name


def test_depth_loss_reaches_semantic_branch_through_lateral_units():
    torch.manual_seed(0)
    model = build_network({"encoder": "resnet18", "sharing": "lateral"})
    model(torch.randn(1, 3, 64, 64)).depth.mean().backward()
    semantic = model.parameter_groups()["semantic"]
    touched = [p for p in semantic if p.grad is not None and float(p.grad.abs().sum()) > 0]
    assert touched, "the depth loss must flow into the semantic decoder via phi_S"
    assert all(p.grad is None for p in model.parameter_groups()["semantic_head"])
    phi = model.decoder.units[0]
    assert float(phi.phi_s.grad.abs().sum()) > 0 and float(phi.phi_d.grad.abs().sum()) > 0


@pytest.mark.parametrize("first, second", [("depth", "semantic"), ("semantic", "depth")])
def test_cascade_feeds_the_first_prediction_into_the_second_branch(first, second):
    """Table 1 'Casc.': information passes task A, then task B; B's loss trains A's branch
    too (A gets forward and backward information), A's loss never reaches B's branch."""
    torch.manual_seed(0)
    model = build_network({"encoder": "resnet18", "sharing": "cascaded", "num_classes": 3,
                           "cascade_first": first})
    losses = {"depth": lambda out: out.depth.mean(),
              "semantic": lambda out: out.semantic_logits.logsumexp(1).mean()}
    image = torch.randn(1, 3, 64, 64)
    groups = model.parameter_groups()
    assert any(n.startswith(f"cascade_to_{second}.") for n, _ in model.named_parameters())
    losses[second](model(image)).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[first])
    model.zero_grad(set_to_none=True)
    losses[first](model(image)).backward()
    assert all(p.grad is None for p in groups[second])
    with torch.no_grad():  # B's prediction follows A's
        before = model.eval()(image)
        getattr(model, f"{first}_head").bias[0] += 2.0
        after = model(image)
    changed = {"depth": not torch.equal(before.depth, after.depth),
               "semantic": not torch.equal(before.semantic_logits, after.semantic_logits)}
    assert changed == {first: True, second: True}
    if first == "semantic":
        with pytest.raises(SynergyError, match="cannot change"):
            model.replace_semantic_head(5)


def test_separate_branches_do_not_exchange_gradients():
    model = build_network({"encoder": "resnet18", "sharing": "separate"})
    model(torch.randn(1, 3, 64, 64)).depth.mean().backward()
    assert all(p.grad is None for p in model.parameter_groups()["semantic"])


# ---------------------------------------------------------------- groups, head swap, BN
def test_parameter_groups_are_disjoint_and_cover_everything():
    model = build_network({"encoder": "resnet18", "sharing": "branch_out", "shared_layers": 2})
    groups = model.parameter_groups()
    assert tuple(groups) == PARAMETER_GROUPS
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert groups["semantic_head"] == list(model.semantic_head.parameters())


def test_replace_semantic_head_keeps_other_weights_bit_identical(small_model):
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    small_model.replace_semantic_head(21)
    after = small_model.state_dict()
    assert small_model.config.num_classes == 21 and small_model.num_classes == 21
    for key, value in before.items():
        if key.startswith("semantic_head."):
            continue
        assert torch.equal(after[key], value), key
    assert after["semantic_head.weight"].shape == (21, 16, 3, 3)
    small_model.eval()
    assert small_model(torch.randn(1, 3, 32, 32)).semantic_logits.shape == (1, 21, 32, 32)
    assert build_network(small_model.config.to_dict()).num_classes == 21
    small_model.replace_semantic_head(5)


def test_frozen_bn_keeps_encoder_statistics():
    model = build_network({"encoder": "resnet18", "frozen_bn": True})
    bn = model.encoder.bn1
    stats = bn.running_mean.clone()
    model.train()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(bn.running_mean, stats) and not bn.training
    assert not bn.weight.requires_grad
    assert model.conv2[1].training  # decoder BN still trains


# ---------------------------------------------------------------- encoder weights
def _torchvision_style_checkpoint(encoder_name, path, drop=(), old=False):
    encoder = ResNetEncoder(encoder_name)
    with torch.no_grad():
        for value in encoder.state_dict().values():
            if value.is_floating_point():
                value.normal_()
    state = dict(encoder.state_dict())
    state["fc.weight"] = torch.zeros(1000, encoder.out_channels)
    state["fc.bias"] = torch.zeros(1000)
    for key in drop:
        del state[key]
    if old:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return encoder


def test_load_encoder_weights_strict(tmp_path, small_model):
    path = tmp_path / "resnet18.pth"
    source = _torchvision_style_checkpoint("resnet18", path, old=True)
    loaded = load_encoder_weights(small_model, path)
    assert "layer4.1.bn2.running_var" in loaded and "fc.weight" not in loaded
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(small_model.encoder.state_dict()[key], value), key


def test_load_encoder_weights_lists_missing_and_unexpected(tmp_path, small_model):
    path = tmp_path / "broken.pth"
    state = _torchvision_style_checkpoint("resnet18", path, drop=("layer1.0.conv1.weight",))
    state = torch.load(path)
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(SynergyError) as info:
        load_encoder_weights(small_model, path)
    message = str(info.value)
    assert "layer1.0.conv1.weight" in message and "layer5.0.conv1.weight" in message
    assert "missing" in message and "unexpected" in message


def test_load_encoder_weights_wrong_backbone_and_missing_file(tmp_path, small_model):
    path = tmp_path / "resnet34.pth"
    _torchvision_style_checkpoint("resnet34", path)
    with pytest.raises(SynergyError, match="unexpected"):
        load_encoder_weights(small_model, path)
    with pytest.raises(SynergyError, match="does not exist"):
        load_encoder_weights(small_model, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SynergyError, match="cannot read"):
        load_encoder_weights(small_model, tmp_path / "junk.pth")


def test_resnet_parameter_counts_match_torchvision():
    # torchvision ResNet parameter counts (with fc: 1000 classes) from its model docs.
    fc = {"resnet18": 512 * 1000 + 1000, "resnet50": 2048 * 1000 + 1000}
    expected = {"resnet18": 11_689_512, "resnet50": 25_557_032}
    for name, count in expected.items():
        encoder = ResNetEncoder(name)
        assert sum(p.numel() for p in encoder.parameters()) + fc[name] == count


def test_resnet50_state_dict_matches_a_real_torchvision_checkpoint():
    # A published inspection of a torchvision ResNet-50 checkpoint fine-tuned to 2 classes
    # lists 320 tensors with 23,565,303 elements, of which fc.weight (2, 2048) + fc.bias (2,)
    # are 4,098: the encoder must hold the other 318 with exactly the same sizes.
    state = ResNetEncoder("resnet50").state_dict()
    assert len(state) == 318
    assert sum(v.numel() for v in state.values()) == 23_565_303 - 4_098
    assert state["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)
    assert state["layer3.5.bn3.running_var"].shape == (1024,)
    assert state["layer1.0.downsample.1.num_batches_tracked"].shape == ()
