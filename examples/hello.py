"""The character model of "hello" (vocabulary h, e, l, o; 3 tanh units; softmax, cross-entropy,
BPTT), printing each step's probabilities. Same as `rnnkit hello`.  Run: python examples/hello.py"""

import sys

from rnnkit.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["hello"] + sys.argv[1:]))
