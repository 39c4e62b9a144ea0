"""The classic MNER baseline: BIO tagging with a pretrained encoder (transformers'
`AutoModelForTokenClassification`), the first sub-token of each word tagged, softmax over the tags
(no CRF: the PyPI CRF layers for torch, pytorch-crf and torchcrf, last shipped in 2019 and 2020).
It reads the records genie trains on (`genie convert --task mner|gmner`), selects on dev with
genie's early-stopping rule, and scores test with genie's own MNER metric, so the counting is
genie's. GMNER records are scored by their MNER reading (span + type).

    python -m bench.baselines.tagger --data data/mner2017 --out bench/baselines/results/tagger-mner2017.json
"""

from __future__ import annotations

import time

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from bench.baselines.common import arguments, encoder_folder, fit, seed_everything, test_and_write
from genie.eval.mner import evaluate_mner
from genie.records import Entity, Record, read_records

MAX_LENGTH = 256  # sub-tokens; longer tweets lose their last words' tags (counted)


def bio_tags(record: Record) -> list[str]:
    tags = ["O"] * len(record.tokens)
    for e in sorted(record.entities, key=lambda e: e.span):
        if any(tag != "O" for tag in tags[e.start:e.end]):
            raise ValueError(f"record {record.id!r}: overlapping entities cannot be BIO tags")
        tags[e.start:e.end] = [f"B-{e.type}"] + [f"I-{e.type}"] * (e.end - e.start - 1)
    return tags


def spans(tags: list[str], tokens: list[str]) -> list[Entity]:
    """conlleval's reading: B-X starts an entity, I-X continues one of type X or starts one."""
    out: list[Entity] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        kind = tag[2:]
        if tag.startswith("I-") and out and out[-1].end == i and out[-1].type == kind:
            out[-1].end = i + 1
        else:
            out.append(Entity(i, i + 1, "", kind))
    for e in out:
        e.text = " ".join(tokens[e.start:e.end])
    return out


class Tagger:
    def __init__(self, folder, labels: list[str]):
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.labels = labels
        self.model = AutoModelForTokenClassification.from_pretrained(
            folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={t: i for i, t in enumerate(labels)})
        self.cut_words = 0

    def encode(self, records: list[Record], with_labels: bool) -> dict:
        enc = self.tokenizer([r.tokens for r in records], is_split_into_words=True, truncation=True,
                             max_length=MAX_LENGTH, padding=True, return_tensors="pt")
        firsts = []
        for row, record in enumerate(records):
            first: dict[int, int] = {}
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None:
                    first.setdefault(word, position)
            firsts.append(first)
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "firsts": firsts}
        if with_labels:
            labels = torch.full_like(enc["input_ids"], -100)
            for row, record in enumerate(records):
                for word, tag in enumerate(bio_tags(record)):
                    if word in firsts[row]:
                        labels[row, firsts[row][word]] = self.labels.index(tag)
            inputs["labels"] = labels
        return inputs

    def loss(self, model, inputs: dict) -> torch.Tensor:
        return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"]).loss

    def predict(self, records: list[Record], batch_size: int = 64) -> list[Record]:
        out = []
        for k in range(0, len(records), batch_size):
            chunk = records[k:k + batch_size]
            inputs = self.encode(chunk, with_labels=False)
            best = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.argmax(-1)
            for row, record in enumerate(chunk):
                first = inputs["firsts"][row]
                # A word with no sub-token of its own (BERT drops U+FE0F) or past the window is O.
                tags = [self.labels[int(best[row, first[w]])] if w in first else "O" for w in range(len(record.tokens))]
                self.cut_words += sum(w not in first for w in range(len(record.tokens)))
                out.append(Record(record.id, record.task, record.tokens, record.image_id, spans(tags, record.tokens)))
        return out


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    seed_everything(args.seed)
    split = {name: read_records(f"{args.data}/{name}.jsonl") for name in ("train", "dev", "test")}
    types = sorted({e.type for r in split["train"] for e in r.entities})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    started = time.perf_counter()
    with encoder_folder(args.encoder) as folder:
        tagger = Tagger(folder, labels)
    model = tagger.model
    fitted = fit(model, split["train"], lambda batch: tagger.encode(batch, with_labels=True), tagger.loss,
                 lambda: evaluate_mner(split["dev"], tagger.predict(split["dev"]))["mner"]["f1"], args)

    def predict_test() -> list[Record]:
        tagger.cut_words = 0
        return tagger.predict(split["test"])

    test_and_write(args, "bio-tagger (softmax)", started, fitted, predict_test,
                   lambda predictions: evaluate_mner(split["test"], predictions),
                   lambda test: {"test_mner": test["mner"], "test_words_untagged": tagger.cut_words})


if __name__ == "__main__":
    main()
