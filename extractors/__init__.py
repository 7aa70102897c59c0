"""Item feature extractors (base, clip, qwenvl, sda) writing feature sets (featureset.py)."""
