import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# The networks here are small; one thread keeps runs fast, repeatable and fair to a 2-core machine.
torch.set_num_threads(1)
