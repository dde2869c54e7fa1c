"""Write the raw (not averaged) weights of a tilt run's last checkpoint as a model directory beside it."""

import sys
from pathlib import Path

import torch

from hrf.models import load_scheduler, load_unet, save_model

run = Path(sys.argv[1])
unet = load_unet(str(run / "model"))
unet.load_state_dict(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["model"])
save_model(unet, load_scheduler(str(run / "model")), run / "raw", extra={"note": "raw weights of checkpoint.pt"})
