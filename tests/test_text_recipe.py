"""The text recipe's stages (tlkit/recipes.py): the head first on cached embeddings, then the top layers."""
from __future__ import annotations

import pytest
import torch

import tlkit as tl
from tlkit.recipes import TextRecipe, train_with_recipe

TEXTS = ["the rocket reached orbit", "astronauts docked with the station", "the moon landing was live",
         "my car engine overheats", "new brake pads stopped the squeal", "the mechanic changed the oil"]


@pytest.fixture
def data():
    model = tl.load_pretrained("minilm", num_classes=2)
    ds = tl.TextDataset(TEXTS, [0, 0, 0, 1, 1, 1], ["space", "cars"]).with_transform(tl.text_transform(model, 16))
    return model, ds


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_head_learns_alone_first_then_the_top_layers(data):
    model, ds = data
    below, top_layer = _snapshot(model.body.encoder.layer[3]), _snapshot(model.body.encoder.layer[5])
    recipe = TextRecipe(epochs=3, head_first_epochs=4, batch_size=3, max_length=16, freeze="last:2")
    histories = train_with_recipe(model, ds, ds, recipe, progress=False)
    assert [len(h) for h in histories] == [4, 3]
    assert all(torch.equal(v, model.body.encoder.layer[3].state_dict()[k]) for k, v in below.items())  # frozen
    assert any(not torch.equal(v, model.body.encoder.layer[5].state_dict()[k]) for k, v in top_layer.items())


@pytest.mark.parametrize("changes", [{"head_first_epochs": 0}, {"freeze": "head"}])
def test_one_stage_without_head_first_epochs_or_top_layers(data, changes):
    model, ds = data
    recipe = TextRecipe(epochs=3, batch_size=3, max_length=16).updated(**changes)
    assert len(train_with_recipe(model, ds, ds, recipe, progress=False)) == 1


def test_bad_head_first_settings_are_refused():
    with pytest.raises(ValueError, match="head_first_epochs must be >= 0"):
        TextRecipe().updated(head_first_epochs=-1)
    with pytest.raises(ValueError, match="head_first_lr > 0"):
        TextRecipe().updated(head_first_lr=0.0)
