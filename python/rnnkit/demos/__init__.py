"""The classic uses behind the ``rnnkit <command>`` shell commands: the "hello" character
model, a character language model, sentiment of short texts, and per-step gradient norms."""
