"""Data: in-memory image sets, the generated course data, folders of photos, public data sets, labelled text."""
from .course import course_data, generate, list_course_data
from .dataset import DataError, DataSplits, ImageDataset
from .folders import load_folder_splits, load_image_folder, public_dataset
from .loaders import make_loader
from .twenty_newsgroups import fetch_newsgroups, newsgroups
from .splits import few_shot, few_shot_indices, split
from .text import TextDataset, drug_reviews, fetch_drug_reviews
from .transforms import AUGMENTATIONS, eval_transforms, mixup_cutmix, train_transforms

__all__ = ["AUGMENTATIONS", "DataError", "DataSplits", "ImageDataset", "TextDataset", "course_data", "drug_reviews",
           "eval_transforms", "fetch_drug_reviews", "fetch_newsgroups",
           "few_shot", "few_shot_indices", "generate", "list_course_data", "load_folder_splits", "load_image_folder",
           "make_loader", "mixup_cutmix", "newsgroups", "public_dataset", "split", "train_transforms"]
