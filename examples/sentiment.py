"""Sentiment of short generated texts where word order decides (negations, "A but not B"): an
LSTM/GRU classifier against a bag-of-words baseline. Same as `rnnkit sentiment`.
Run: python examples/sentiment.py [--cell gru]"""

import sys

from rnnkit.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["sentiment"] + sys.argv[1:]))
