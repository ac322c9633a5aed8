"""The classic uses, runnable from `rnnkit <command>` and from examples/: the "hello" character
model, a character language model, sentiment of short texts, and per-step gradient norms."""
