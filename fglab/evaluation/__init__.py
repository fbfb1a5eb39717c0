"""Evaluation: both retrieval directions of a fitted method on a test split."""
