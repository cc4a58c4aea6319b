"""Freezing: which parameters learn, BatchNorm kept in eval, discriminative parameter groups."""
from __future__ import annotations

import pytest
import torch
import torchvision

import tlkit


@pytest.fixture
def lite0():
    return tlkit.load_pretrained("efficientnet_lite0", num_classes=4)


def test_parts_are_ordered_stem_blocks_head(lite0):
    names = [p.name for p in tlkit.parts(lite0)]
    assert names[0] == "stem" and names[-1] == "head" and names[-2] == "neck"
    assert names[1:-2] == [f"blocks.{i}" for i in range(7)]
    resnet = [p.name for p in tlkit.parts(torchvision.models.resnet18())]
    assert resnet == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def test_freeze_leaves_only_the_head_trainable(lite0):
    tlkit.freeze(lite0)
    summary = tlkit.freeze_summary(lite0)
    assert [r["status"] for r in summary.rows] == ["no"] * 9 + ["yes"]
    assert summary.trainable == tlkit.count_parameters(lite0, trainable_only=True) == 1280 * 4 + 4
    assert "head" in repr(summary) and "<table>" in summary._repr_html_()


def test_unfreeze_last_n_and_by_name(lite0):
    tlkit.unfreeze_last(lite0, 2)
    status = {r["part"]: r["status"] for r in tlkit.freeze_summary(lite0).rows}
    assert status["blocks.6"] == status["neck"] == status["head"] == "yes" and status["blocks.5"] == "no"
    tlkit.unfreeze_by_name(lite0, "blocks.4")
    assert tlkit.freeze_summary(lite0).rows[5]["status"] == "yes"
    tlkit.unfreeze_last(lite0, 100)
    assert tlkit.count_parameters(lite0, True) == tlkit.count_parameters(lite0)
    tlkit.unfreeze_last(lite0, 0)
    assert tlkit.count_parameters(lite0, True) == 1280 * 4 + 4
    with pytest.raises(ValueError, match="n must be"):
        tlkit.unfreeze_last(lite0, -1)


def test_unknown_module_name_suggests_close_ones(lite0):
    with pytest.raises(ValueError, match="blocks.6"):
        tlkit.unfreeze_by_name(lite0, "block.6")


def test_frozen_batchnorm_statistics_do_not_move(lite0):
    """The pitfall: requires_grad=False alone does not stop BN running stats in train mode."""
    tlkit.freeze(lite0)
    bn = lite0.blocks[2][0].bn1
    before = bn.running_mean.clone()
    x = torch.randn(4, 3, 64, 64) * 3 + 1  # statistics unlike ImageNet's

    lite0.train()  # what every training loop does; this also switches frozen BN back to train mode
    with torch.no_grad():
        lite0(x)
    assert not torch.equal(bn.running_mean, before), "sanity: BN in train mode does update"

    bn.running_mean.copy_(before)
    lite0.train()
    assert tlkit.set_frozen_bn_eval(lite0) > 40
    with torch.no_grad():
        lite0(x)
    assert torch.equal(bn.running_mean, before)
    assert not lite0.bn2.training and lite0.classifier.training


def test_param_groups_give_earlier_parts_smaller_lrs(lite0):
    tlkit.unfreeze_last(lite0, 3)
    groups = tlkit.param_groups(lite0, lr=1e-3, lr_mult=0.5, weight_decay=0.05)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == pytest.approx(1e-3)
    assert by_name["neck"]["lr"] == pytest.approx(5e-4)
    assert by_name["blocks.5"]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert all(g["weight_decay"] == 0 for g in groups if g["name"].endswith("no_decay"))
    n_in_groups = sum(p.numel() for g in groups for p in g["params"])
    assert n_in_groups == tlkit.count_parameters(lite0, trainable_only=True)
    with pytest.raises(ValueError, match="lr_mult"):
        tlkit.param_groups(lite0, 1e-3, lr_mult=2.0)


def test_param_groups_with_nothing_trainable_says_what_to_do(lite0):
    for p in lite0.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="tlkit.freeze"):
        tlkit.param_groups(lite0, 1e-3)


def test_freeze_batchnorm_keeps_bn_fixed_while_convolutions_train(lite0):
    tlkit.unfreeze(lite0)
    n = tlkit.freeze_batchnorm(lite0)
    bns = [m for m in lite0.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n == len(bns) > 40
    assert not any(p.requires_grad for m in bns for p in m.parameters())
    assert lite0.blocks[3][0].conv_pw.weight.requires_grad and lite0.classifier.weight.requires_grad
    stats = lite0.blocks[2][0].bn1.running_var.clone()
    lite0.train()
    tlkit.set_frozen_bn_eval(lite0)  # what fit does after model.train()
    loss = lite0(torch.randn(4, 3, 64, 64) * 2).sum()
    loss.backward()
    assert lite0.blocks[3][0].conv_pw.weight.grad is not None
    assert torch.equal(lite0.blocks[2][0].bn1.running_var, stats)
