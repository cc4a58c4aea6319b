"""L2-SP, head dropout and weight drift: real tiny training runs on the stripes task of test_train."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from test_train import TinyNet, quiet, stripes
from tlkit.freezing import freeze
from tlkit.models import head_name
from tlkit.regularisation import L2SP, add_head_dropout, drift_by_part, snapshot_weights, weight_drift
from tlkit.train import fit


@pytest.fixture(scope="module")
def data():
    return stripes(160, seed=0), stripes(64, seed=1)


@pytest.fixture(scope="module")
def pretrained(data):
    """A TinyNet trained on the stripes task: our stand-in for a pretrained network."""
    train, val = data
    torch.manual_seed(0)
    model = TinyNet()
    fit(model, train, val, epochs=4, lr=1e-2, batch_size=16, seed=0, **quiet())
    return model.state_dict()


def fresh(state: dict) -> TinyNet:
    model = TinyNet()
    model.load_state_dict(state)
    return model


def test_l2sp_is_zero_at_the_start_and_grows_with_the_distance():
    torch.manual_seed(0)
    model = TinyNet()
    penalty = L2SP(model, alpha=0.5, beta=0.0)
    assert penalty().item() == 0.0
    with torch.no_grad():
        model.features[0][0].weight.add_(0.1)  # move one body tensor by 0.1 everywhere
    expected = 0.5 / 2 * 0.1**2 * model.features[0][0].weight.numel()
    assert penalty().item() == pytest.approx(expected, rel=1e-4)
    assert penalty().requires_grad  # it can be trained against


def test_l2sp_pulls_the_head_towards_zero_with_beta_and_ignores_frozen_parameters():
    torch.manual_seed(0)
    model = TinyNet()
    head_only = L2SP(model, alpha=1.0, beta=2.0)
    freeze(model)  # the body no longer trains: only the head counts
    with torch.no_grad():
        model.features[0][0].weight.add_(1.0)
    head_sq = model.classifier.weight.pow(2).sum() + model.classifier.bias.pow(2).sum()
    assert head_only().item() == pytest.approx(2.0 / 2 * head_sq.item(), rel=1e-5)
    with pytest.raises(ValueError, match="alpha and beta must be >= 0"):
        L2SP(model, alpha=-1.0)


def test_l2sp_keeps_fine_tuned_weights_closer_to_the_pretrained_ones(data, pretrained):
    train, val = data
    drifts, accs = {}, {}
    for name, alpha in (("plain", 0.0), ("l2sp", 1.0)):
        torch.manual_seed(0)
        model = fresh(pretrained)
        model.classifier = nn.Linear(16, 4)  # a new head, as in transfer learning
        start = snapshot_weights(model)
        history = fit(model, train, val, epochs=3, lr=1e-2, batch_size=16, weight_decay=0.0, seed=0,
                      penalty=L2SP(model, alpha=alpha, beta=0.0), **quiet())
        drifts[name], accs[name] = weight_drift(model, start), history.best["val_acc"]
    assert drifts["l2sp"] < 0.7 * drifts["plain"]  # pulled back towards the start (measured: ~0.5x)
    assert accs["l2sp"] >= 0.8  # and the new head still learned the task (chance is 0.25)


def test_weight_drift_is_zero_at_the_start_and_drift_by_part_follows_lr_mult(data, pretrained):
    model = fresh(pretrained)
    start = snapshot_weights(model)
    assert weight_drift(model, start) == 0.0
    assert set(drift_by_part(model, start)) == {"features.0", "features.1", "head"}
    fit(model, data[0], epochs=2, lr=1e-2, lr_mult=0.1, batch_size=16, seed=0, **quiet())
    by_part = drift_by_part(model, start)
    assert 0 < by_part["features.0"] < by_part["features.1"] < by_part["head"]  # LR x0.01, x0.1, x1
    with pytest.raises(ValueError, match="snapshot_weights"):
        weight_drift(model, {"unrelated": torch.zeros(3)})


def test_add_head_dropout_wraps_the_head_and_is_inactive_in_eval_mode(data):
    torch.manual_seed(0)
    model = TinyNet()
    old_head = model.classifier
    x = torch.randn(8, 3, 12, 12)
    before = model.eval()(x)
    add_head_dropout(model, 0.5)
    assert isinstance(model.classifier, nn.Sequential) and model.classifier[1] is old_head
    assert head_name(model) == "classifier"
    assert torch.allclose(model.eval()(x), before)  # eval: dropout does nothing
    model.train()
    assert not torch.allclose(model(x), model(x))  # train: a different random mask every call
    add_head_dropout(model, 0.2)  # again: changes p, does not nest
    assert model.classifier[0].p == 0.2 and isinstance(model.classifier[1], nn.Linear)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        add_head_dropout(model, 1.0)


def test_a_model_with_head_dropout_trains_and_freeze_keeps_the_head_trainable(data):
    train, val = data
    torch.manual_seed(0)
    model = add_head_dropout(TinyNet(), 0.3)
    history = fit(model, train, val, epochs=4, lr=1e-2, batch_size=16, seed=0, **quiet())
    assert history.best["val_acc"] >= 0.7  # chance is 0.25
    freeze(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.1.weight", "classifier.1.bias"}
