from pathlib import Path

HERE = Path(__file__).resolve().parent  # script defaults live here, whatever the working directory
DATA = HERE.parent / "data"  # torchvision's MNIST (--dataset mnist)
