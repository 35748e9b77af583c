#!/usr/bin/env python3
"""Checks a pneumoseg checkpoint from the PyTorch side.

  python3 tools/torch_fixtures/check_checkpoint.py CKPT INPUT LOGITS

Loads CKPT (a safetensors checkpoint written by pneumoseg) into the seed's
U-Net with load_state_dict(strict=True), after dropping the optimiser's
"optimizer." tensors. It then runs the model in eval mode on the float32
tensor `input` of INPUT and compares the result with the `logits` of LOGITS
(e.g. from `pneumoseg predict --model CKPT INPUT -o LOGITS`). It prints the
relative error, max |diff| / max |PyTorch|, and exits 1 when that exceeds
1e-4.
"""
import sys

import torch
from safetensors.torch import load_file

from make_fixtures import SeedUNet

TOLERANCE = 1e-4


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ckpt, input_path, logits_path = sys.argv[1:]
    state = {k: v for k, v in load_file(ckpt).items() if not k.startswith("optimizer.")}
    model = SeedUNet(state["enc1_1.0.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    model.eval()
    torch.set_num_threads(1)
    with torch.no_grad():
        want = model(load_file(input_path)["input"])
    got = load_file(logits_path)["logits"]
    err = ((got - want).abs().max() / want.abs().max()).item()
    print(f"{ckpt}: base {model.enc1_1[0].out_channels}, {tuple(want.shape)}, "
          f"relative error {err:.3g}")
    sys.exit(0 if err <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
