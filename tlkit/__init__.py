"""tlkit: the small library behind the transfer-learning course.

Use it flat::

    import tlkit as tl
    data = tl.course_data()
    model = tl.load_pretrained("efficientnet_lite0", num_classes=len(data.classes))
    tl.freeze(model)
    history = tl.fit(model, data.train, data.val, epochs=3, lr=1e-3)
    report = tl.evaluate(model, data.test)

Every function here lives in a small module you can open and read: ``tlkit/train.py`` holds the
training loop, ``tlkit/freezing.py`` what freezing does, ... ``tlkit/README.md`` draws the map: which
module owns which step, and what may import what. Names are imported on first use, so
``import tlkit`` stays fast (it does not even import torch) and the command line starts quickly.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # devices and reproducibility
    "get_device": "device", "describe_device": "device", "seed_everything": "device",
    "set_threads": "device", "find_batch_size": "batch_size",
    # models
    "load_pretrained": "models", "replace_head": "models", "get_head": "models",
    "imagenet_classes": "models", "available_models": "models", "fetch_weights": "models",
    "weights_location": "models", "WeightsNotAvailableError": "models", "OFFLINE_MODEL": "models",
    "ModelConfig": "config", "get_config": "config",
    # freezing
    "freeze": "freezing", "unfreeze": "freezing", "unfreeze_last": "freezing", "unfreeze_by_name": "freezing",
    "freeze_by_name": "freezing", "freeze_batchnorm": "freezing", "freeze_summary": "freezing", "parts": "freezing",
    "param_groups": "freezing", "set_frozen_bn_eval": "freezing", "count_parameters": "freezing",
    "set_trainable": "freezing",
    # data
    "ImageDataset": "data", "DataSplits": "data", "DataError": "data", "course_data": "data",
    "few_shot": "data", "few_shot_indices": "data", "split": "data", "train_transforms": "data", "eval_transforms": "data",
    "AUGMENTATIONS": "data", "load_image_folder": "data", "load_folder_splits": "data",
    "public_dataset": "data", "make_loader": "data",
    "TextDataset": "data", "drug_reviews": "data", "fetch_drug_reviews": "data", "newsgroups": "data",
    "fetch_newsgroups": "data",
    "TextClassifier": "text", "text_transform": "text", "TextTop": "text", "text_top_inputs": "text",
    # training and evaluation
    "fit": "train", "History": "train", "balanced_class_weights": "train", "lr_find": "lr_finder", "LRFindResult": "lr_finder",
    "Callback": "callbacks", "EarlyStopping": "callbacks",
    "evaluate": "evaluation", "EvalReport": "evaluation", "predict": "evaluation",
    "model_outputs": "evaluation",
    "plot_history": "plots", "plot_confusion": "plots", "show_images": "plots",
    "plot_lr_find": "plots",
    # decisions and calibration (lesson 07): thresholds, subgroups, honest probabilities
    "precision_recall_curve": "decisions", "PrecisionRecall": "decisions",
    "threshold_for_recall": "decisions", "screening_report": "decisions", "ScreeningReport": "decisions",
    "group_metrics": "decisions", "GroupReport": "decisions",
    "reliability_bins": "calibration", "ReliabilityBins": "calibration",
    "expected_calibration_error": "calibration", "negative_log_likelihood": "calibration",
    "fit_temperature": "calibration", "apply_temperature": "calibration",
    "plot_reliability": "plots", "plot_precision_recall": "plots",
    # feature extraction
    "extract_features": "features", "head_removed": "features",
    "cached_features": "feature_cache", "clear_feature_cache": "feature_cache",
    # regularisation (lesson 05) and weight drift (lesson 04)
    "L2SP": "regularisation", "add_head_dropout": "regularisation", "snapshot_weights": "regularisation",
    "weight_drift": "regularisation", "drift_by_part": "regularisation",
    # looking inside a pretrained model (lesson 01) and checking the machine (lesson 00)
    "top_k": "inspection", "plot_top_k": "inspection", "first_layer_filters": "inspection",
    "plot_filters": "inspection", "feature_maps": "inspection", "plot_feature_maps": "inspection",
    "knn_accuracy": "inspection", "linear_probe": "inspection", "linear_probe_accuracy": "inspection", "embed_2d": "inspection",
    "plot_embeddings": "inspection", "prepare_image": "inspection", "doctor": "course.doctor",
    # checkpoints
    "save_model": "checkpoint", "load_model": "checkpoint", "load_weights": "checkpoint",
    "CheckpointError": "checkpoint",
    # test-time augmentation (lesson 06); choosing, exporting (lesson 07)
    "with_tta": "tta", "TTA_VIEWS": "tta",
    "compare_backbones": "backbones", "measure_latency": "backbones", "published_top1": "backbones",
    "rank_backbones": "backbones",
    "export_torchscript": "export", "load_torchscript": "export", "export_onnx": "export",
    "compare_predictions": "export", "ExportError": "export",
    # exercises
    "exercise": "course.exercises", "claim": "course.claims", "available_exercises": "course.exercises",
    # widgets: explorers and quizzes (tlkit/course/widgets/)
    "lr_explorer": "course.widgets", "freezing_explorer": "course.widgets", "augmentation_explorer": "course.widgets",
    "overfitting_explorer": "course.widgets", "prediction_explorer": "course.widgets", "quiz": "course.widgets",
    "text_explorer": "course.widgets",
    "load_quiz": "course.widgets", "available_quizzes": "course.widgets", "QuizError": "course.widgets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tlkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
