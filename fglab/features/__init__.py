"""Feature extraction: text and image views of a data set, aligned with its pairs."""
