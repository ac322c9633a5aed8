"""||dL/dh_t|| over 100 steps for RNN, LSTM and GRU: the vanishing gradient of the vanilla RNN,
as a PNG. Same as `rnnkit gradnorm`.  Run: python examples/gradnorm.py -o gradnorm.png"""

import sys

from rnnkit.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["gradnorm"] + sys.argv[1:]))
