import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/games.py
# one torch thread: two threads fighting any other process (a Ray worker, a subprocess) for two cores
# run tens of times slower, as OpenMP threads wait on each other
torch.set_num_threads(1)
