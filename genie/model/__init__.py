"""The model side: where a backbone comes from (`sources`), what genie reads from it
(`backbones`), the model with its region input and grounding head (`modeling`), the pointer head
for index targets (`pointer`), how targets meet the tokenizer (`targets`, `surface`,
`constrained`), tokenizers trained on the spot (`tokenizer`) and warm-started backbones
(`warm_start`)."""
