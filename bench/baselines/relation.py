"""The classic MRE baseline: an entity-marker classifier (markers around the head and the tail in
the text, the encoder's states at the two opening markers concatenated, one linear layer over the
relations), as the MNRE papers' BERT baselines. Built on transformers' `AutoModel`. It reads the
records genie trains on (`genie convert --task mre`), selects on dev with genie's early-stopping
rule, and scores test with genie's own MRE metric (micro F1 over relations that are not None).

    python -m bench.baselines.relation --data data/mnre --out bench/baselines/results/relation-mnre.json
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from transformers import AutoModel, AutoTokenizer

from bench.baselines.common import arguments, encoder_folder, fit, seed_everything, test_and_write
from genie.eval.mre import evaluate_mre, mre_label
from genie.labels import MNRE_LABELS, NO_RELATION
from genie.records import Record, Relation, read_records
from genie.tasks import get_task

MARKERS = ("[h]", "[/h]", "[t]", "[/t]")  # genie's MRE source marks the pair so (`MRE.source_text`)
MAX_LENGTH = 256
MRE_TASK = get_task("mre")


class MarkerClassifier(torch.nn.Module):
    def __init__(self, folder, labels: tuple[str, ...]):
        super().__init__()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.add_special_tokens({"additional_special_tokens": list(MARKERS)})
        self.encoder = AutoModel.from_pretrained(folder)
        self.encoder.resize_token_embeddings(len(self.tokenizer))
        width = self.encoder.config.hidden_size
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(2 * width, len(labels)))
        self.labels = labels
        self.h, self.t = self.tokenizer.convert_tokens_to_ids(["[h]", "[t]"])

    def encode(self, records: list[Record], with_labels: bool) -> dict:
        enc = self.tokenizer([MRE_TASK.source_text(r) for r in records], truncation=True, max_length=MAX_LENGTH,
                             padding=True, return_tensors="pt")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if with_labels:
            inputs["labels"] = torch.tensor([self.labels.index(mre_label(r)) for r in records])
        return inputs

    def forward(self, input_ids, attention_mask) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # The first [h] and [t] of each row; a marker cut off by MAX_LENGTH falls back to [CLS].
        h = ((input_ids == self.h).int().argmax(1))
        t = ((input_ids == self.t).int().argmax(1))
        rows = torch.arange(len(input_ids))
        return self.head(torch.cat([states[rows, h], states[rows, t]], -1))

    def loss(self, model, inputs: dict) -> torch.Tensor:
        logits = model(inputs["input_ids"], inputs["attention_mask"])
        return torch.nn.functional.cross_entropy(logits.float(), inputs["labels"])

    def predict(self, records: list[Record], batch_size: int = 64) -> list[Record]:
        out = []
        for k in range(0, len(records), batch_size):
            chunk = records[k:k + batch_size]
            inputs = self.encode(chunk, with_labels=False)
            best = self(inputs["input_ids"], inputs["attention_mask"]).argmax(-1).tolist()
            for record, label in zip(chunk, best):
                relation = self.labels[label]
                out.append(replace(record, relations=[] if relation == NO_RELATION else [Relation(0, 1, relation)],
                                   unreadable=0))
        return out


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    seed_everything(args.seed)
    split = {name: read_records(f"{args.data}/{name}.jsonl") for name in ("train", "dev", "test")}
    started = time.perf_counter()
    with encoder_folder(args.encoder) as folder:
        model = MarkerClassifier(folder, MNRE_LABELS)
    fitted = fit(model, split["train"], lambda batch: model.encode(batch, with_labels=True), model.loss,
                 lambda: evaluate_mre(split["dev"], model.predict(split["dev"]))["mre"]["f1"], args)
    test_and_write(args, "entity-marker classifier", started, fitted, lambda: model.predict(split["test"]),
                   lambda predictions: evaluate_mre(split["test"], predictions),
                   lambda test: {"test_mre": test["mre"], "test_accuracy": test["accuracy"]})

if __name__ == "__main__":
    main()
