"""genie: one seq2seq extractor for multimodal information extraction on social media.

`from genie import Extractor` is the Python API (`genie.inference.extractor`); it is imported on first use,
so the command line starts without loading torch for `genie --help`.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Extractor":
        from genie.inference.extractor import Extractor

        return Extractor
    raise AttributeError(f"module 'genie' has no attribute {name!r}")
