"""The text explorer (tlkit/course/widgets/text.py): a typed sentence, its prediction and nearest texts."""
from __future__ import annotations

import pytest
import torch

import tlkit as tl

TEXTS = ["the rocket reached orbit after launch", "astronauts docked with the space station",
         "the moon landing was broadcast live", "my car engine overheats on the highway",
         "new brake pads stopped the squealing", "the mechanic changed the oil and tires"]
CLASSES = ["space", "cars"]


@pytest.fixture(scope="module")
def trained():
    """A frozen MiniLM whose head is trained on six sentences (two topics) through cached features."""
    data = tl.TextDataset(TEXTS, [0, 0, 0, 1, 1, 1], CLASSES)
    model = tl.freeze(tl.load_pretrained("minilm", num_classes=2))
    feats = tl.extract_features(model, data.with_transform(tl.text_transform(model, 32)))
    tl.fit(model.classifier, feats, None, epochs=60, lr=5e-2, batch_size=6, seed=0, progress=False, verbose=False)
    return model, data


def test_a_typed_sentence_gets_a_prediction_and_its_nearest_texts(trained):
    model, data = trained
    ex = tl.text_explorer(model, data, text="the shuttle launch was delayed", neighbours=3)
    r = ex.result
    assert r["prediction"] == "space" and 0.5 < r["confidence"] <= 1
    assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    sims = [n["similarity"] for n in r["neighbours"]]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    assert all(n["label"] == "space" and n["text"] in TEXTS[:3] for n in r["neighbours"][:2])
    assert "3 nearest training texts" in ex.view.value and "space" in ex.summary_html()
    ex.controls["text"].value = "my tires need air"   # what typing and pressing Enter does
    assert ex.result["prediction"] == "cars" and ex.result["text"] == "my tires need air"
    assert "cars" in ex.summary_text()


def test_the_model_is_left_as_it_was(trained):
    model, data = trained
    model.train()
    ex = tl.text_explorer(model, data)
    ex.show("orbit")
    assert model.training and ex.result is not None


def test_bad_inputs_are_clear_errors(trained):
    model, data = trained
    ex = tl.text_explorer(model, data)
    assert "Type a sentence" in ex.view.value and "no sentence" in ex.summary_text()
    with pytest.raises(ValueError, match="text is empty"):
        ex.predict("   ")
    ex.controls["text"].value = "  "
    assert "text is empty" in ex.error_box.value  # shown in the widget, not a lost traceback
    with pytest.raises(ValueError, match="2 outputs but the data has 3 classes"):
        tl.text_explorer(model, tl.TextDataset(TEXTS[:3], [0, 1, 2], ["a", "b", "c"]))
    with pytest.raises(ValueError, match="trained head"):
        tl.text_explorer(tl.load_pretrained("minilm"), data)
    with pytest.raises(ValueError, match="TextDataset"):
        tl.text_explorer(model, ["a", "b"])
    with pytest.raises(ValueError, match="neighbours must be 1 to 6"):
        tl.text_explorer(model, data, neighbours=7)
    bundle = ex._repr_mimebundle_()
    assert "text/html" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
