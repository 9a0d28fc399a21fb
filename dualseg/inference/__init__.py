"""Inference: whole-image / sliding-window prediction, loading trained models, writers."""
