"""Loaders for published text+image classification data sets, and a bundled one.

Every loader returns a :class:`pandas.DataFrame` with the columns ``text``,
``image`` (an absolute path) and ``label``, plus whatever else its format carries.
Image files are checked to exist, but not opened: decoding is left to the
estimators.
"""

from multimodal_clf.datasets._clipart import load_clipart, load_clipart_mini
from multimodal_clf.datasets._csv import load_csv
from multimodal_clf.datasets._hateful_memes import load_hateful_memes
from multimodal_clf.datasets._snli_ve import load_snli_ve
from multimodal_clf.datasets._vqa import load_vqa_v2

__all__ = [
    "load_clipart",
    "load_clipart_mini",
    "load_csv",
    "load_hateful_memes",
    "load_snli_ve",
    "load_vqa_v2",
]
