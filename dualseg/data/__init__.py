"""Data: readers, dataset descriptions, folder scanning, splits, transforms and the dataset class."""
