"""A character LSTM language model on the Zen of Python (or --text FILE), trained by truncated
BPTT with a progress bar, then sampled; times an epoch on each backend. Same as `rnnkit demo`.
Run: python examples/char_lm.py [--text FILE] [--epochs N]"""

import sys

from rnnkit.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["demo"] + sys.argv[1:]))
