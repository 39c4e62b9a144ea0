"""What a decoder may write: index targets' automaton (`index`) and its tensor form for
decoding (`tensor`), text targets' automaton over bytes (`text`). Grammars sit below both the
tasks (which write and parse targets with them) and the model (which decodes under them)."""
