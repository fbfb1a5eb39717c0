"""Feature extraction: text and image views of a data set, aligned with its pairs; the feature
store that keeps computed vectors by content (:mod:`fglab.features.store`) and featurizing a
whole collection into it (:mod:`fglab.features.featurize`)."""
