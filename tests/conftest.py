import atexit
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/games.py
# one torch thread: two threads fighting any other process (a Ray worker, a subprocess) for two cores
# run tens of times slower, as OpenMP threads wait on each other
torch.set_num_threads(1)

# SmolLM2 converted from its GGUF file once per test session (LLM/load.py), not into the user's cache
os.environ.setdefault("MSA_UNITS_CACHE", tempfile.mkdtemp(prefix="msa-units-cache-"))
atexit.register(shutil.rmtree, os.environ["MSA_UNITS_CACHE"], True)
