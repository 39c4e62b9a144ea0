"""Image regions, from the bottom up: one image's VinVL-layout file (`npz`), the manifest naming
the detector that made them (`manifest`), stores that pack them (`store`), the source the model
reads by image id (`source`), and making them from images (`images`, `detectors`,
`random_detectors`, `extract`)."""
