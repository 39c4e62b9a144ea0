"""The classic baselines genie is compared with, on the same records, encoder and metric code:
a BIO tagger for MNER (`tagger`) and an entity-marker classifier for MRE (`relation`).
Measurements, not part of genie's API (docs/pretrained-backbones.md)."""
