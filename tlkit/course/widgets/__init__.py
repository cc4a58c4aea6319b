"""Interactive explorers and quizzes for the lessons (ipywidgets).

Each one is a single call in a notebook, shows itself as the last line of a cell, and can be
driven from code (``.set(...)``, ``.run(...)``, ``.results``), which is how lessons record a
result and how the tests check them::

    import tlkit as tl
    data = tl.course_data()
    tl.lr_explorer(data)                 # learning rate and schedule
    tl.freezing_explorer(data)           # which parts train
    tl.augmentation_explorer(data)       # what each augmentation does to the same images
    tl.overfitting_explorer(data)        # data size, regularisation, the train/val gap
    tl.prediction_explorer(model, data.val)   # predictions, mistakes first
    tl.text_explorer(model, splits.train)     # a typed sentence: prediction and nearest texts
    tl.quiz("03")                        # the quiz of lesson 03

Modules are imported on first use: ``tl.quiz`` (for graders) does not need ipywidgets.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "lr_explorer": "lr", "LRExplorer": "lr",
    "freezing_explorer": "freezing", "FreezingExplorer": "freezing",
    "augmentation_explorer": "augmentation", "AugmentationExplorer": "augmentation",
    "overfitting_explorer": "overfitting", "OverfittingExplorer": "overfitting",
    "prediction_explorer": "predictions", "PredictionExplorer": "predictions",
    "text_explorer": "text", "TextExplorer": "text",
    "quiz": "questions", "load_quiz": "questions", "Quiz": "questions", "QuizError": "questions",
    "available_quizzes": "questions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tlkit.course.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
