"""genie: one seq2seq extractor for multimodal information extraction on social media."""

__version__ = "0.1.0"
