"""Data: readers, dataset layouts and descriptions, folder scanning, splits, transforms and the dataset class.

Importing the package registers the known datasets (:mod:`dualseg.data.datasets`).
"""

from dualseg.data import datasets  # noqa: F401  (registers every known dataset)
