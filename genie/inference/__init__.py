"""Prediction: batched generation to records with boxes (`decode`), the Python API over a
checkpoint (`extractor`), raw posts in and out (`posts`), and whole files, resumable
(`files`, `journal`)."""
