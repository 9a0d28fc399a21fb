"""Planning (``dualseg plan``): measure a dataset folder, then choose a configuration for it."""
