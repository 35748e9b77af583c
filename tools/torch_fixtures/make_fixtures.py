#!/usr/bin/env python3
"""Writes the PyTorch fixtures that tests/test_model_unet.c checks against.

The seed's U-Net (same module names, so the same state_dict), with the base
width as a parameter, is run in PyTorch on a fixed input and mask:

  <out>/unet_b<B>_init.safetensors   the starting weights, written by
                                     safetensors.torch.save_file: a
                                     PyTorch-written checkpoint
  <out>/unet_b<B>_expected.safetensors
      input, target                  (N,1,S,S) float32
      logits.eval                    model.eval() output of the start weights
      logits.train                   model.train() output (batch statistics)
      loss.total / loss.bce / loss.dice   float64 scalars, BCE 1 + Dice 1
      grad.<param>                   every parameter's gradient of loss.total
      after_train.<name>             running stats after that training forward
      after3.<name>                  the whole state_dict after three Adam
                                     steps (lr 1e-2, eps 1e-3, weight decay 1e-2)

Run with Debian's python3-torch (1.13) or pip torch (CPU) plus pip
safetensors:  python3 tools/torch_fixtures/make_fixtures.py tests/data/model
Options --base and --size make larger variants (e.g. --base 64 --size 64
for the seed-sized check of `pneumoseg predict`); they are not committed.
"""
import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# Adam's first steps divide each gradient by its own magnitude, so with the
# default eps (1e-8) a weight whose gradient is rounding noise (a conv bias
# before BatchNorm, a dead ReLU channel) moves by ±lr on the noise's sign:
# no two float implementations agree on it. eps = 1e-3 keeps the update
# proportional to the gradient for these small models, so three steps are
# comparable element by element; the eps = 1e-8 formula is checked op by op.
LR = 1e-2
EPS = 1e-3
WEIGHT_DECAY = 1e-2
ADAM_STEPS = 3


def conv_bn_relu(cin, cout):
    # The seed's CBR2d: Sequential(Conv2d 3x3 pad 1, BatchNorm2d, ReLU), so
    # the state-dict names are <block>.0.* and <block>.1.*.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=True),
                         nn.BatchNorm2d(cout), nn.ReLU())


class SeedUNet(nn.Module):
    """The seed's U-Net; attribute names and their order are the seed's."""

    def __init__(self, base=64):
        super().__init__()
        b = base
        self.enc1_1 = conv_bn_relu(1, b)
        self.enc1_2 = conv_bn_relu(b, b)
        self.pool1 = nn.MaxPool2d(2)
        self.enc2_1 = conv_bn_relu(b, 2 * b)
        self.enc2_2 = conv_bn_relu(2 * b, 2 * b)
        self.pool2 = nn.MaxPool2d(2)
        self.enc3_1 = conv_bn_relu(2 * b, 4 * b)
        self.enc3_2 = conv_bn_relu(4 * b, 4 * b)
        self.pool3 = nn.MaxPool2d(2)
        self.enc4_1 = conv_bn_relu(4 * b, 8 * b)
        self.enc4_2 = conv_bn_relu(8 * b, 8 * b)
        self.pool4 = nn.MaxPool2d(2)
        self.enc5_1 = conv_bn_relu(8 * b, 16 * b)
        self.dec5_1 = conv_bn_relu(16 * b, 8 * b)
        self.unpool4 = nn.ConvTranspose2d(8 * b, 8 * b, 2, 2, 0, bias=True)
        self.dec4_2 = conv_bn_relu(16 * b, 8 * b)
        self.dec4_1 = conv_bn_relu(8 * b, 4 * b)
        self.unpool3 = nn.ConvTranspose2d(4 * b, 4 * b, 2, 2, 0, bias=True)
        self.dec3_2 = conv_bn_relu(8 * b, 4 * b)
        self.dec3_1 = conv_bn_relu(4 * b, 2 * b)
        self.unpool2 = nn.ConvTranspose2d(2 * b, 2 * b, 2, 2, 0, bias=True)
        self.dec2_2 = conv_bn_relu(4 * b, 2 * b)
        self.dec2_1 = conv_bn_relu(2 * b, b)
        self.unpool1 = nn.ConvTranspose2d(b, b, 2, 2, 0, bias=True)
        self.dec1_2 = conv_bn_relu(2 * b, b)
        self.dec1_1 = conv_bn_relu(b, b)
        self.fc = nn.Conv2d(b, 1, 1, 1, 0, bias=True)

    def forward(self, x):
        e1 = self.enc1_2(self.enc1_1(x))
        e2 = self.enc2_2(self.enc2_1(self.pool1(e1)))
        e3 = self.enc3_2(self.enc3_1(self.pool2(e2)))
        e4 = self.enc4_2(self.enc4_1(self.pool3(e3)))
        d5 = self.dec5_1(self.enc5_1(self.pool4(e4)))
        d4 = self.dec4_1(self.dec4_2(torch.cat((self.unpool4(d5), e4), dim=1)))
        d3 = self.dec3_1(self.dec3_2(torch.cat((self.unpool3(d4), e3), dim=1)))
        d2 = self.dec2_1(self.dec2_2(torch.cat((self.unpool2(d3), e2), dim=1)))
        d1 = self.dec1_1(self.dec1_2(torch.cat((self.unpool1(d2), e1), dim=1)))
        return self.fc(d1)


def seg_loss(logits, target):
    """BCEWithLogits (mean) + the seed's soft Dice loss (smooth 1)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    s = torch.sigmoid(logits).view(-1)
    t = target.view(-1)
    dice = (2.0 * (s * t).sum() + 1.0) / (s.sum() + t.sum() + 1.0)
    return bce + (1.0 - dice), bce, 1.0 - dice


def blob_masks(n, size, gen):
    """A few random discs per image: a target with both classes."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(2):
            cy, cx = torch.randint(0, size, (2,), generator=gen).tolist()
            r = size / 8 + torch.rand(1, generator=gen).item() * size / 8
            masks[i, 0][((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r] = 1.0
    return masks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--base", type=int, default=4)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--no-train", action="store_true",
                    help="only the start weights, input and eval logits (large models)")
    args = ap.parse_args()
    # Imported here so that bench/model/bench_torch.py can use the model
    # without the safetensors package.
    from safetensors.torch import save_file
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)

    model = SeedUNet(args.base)
    # Non-trivial BatchNorm state, so eval mode is a real test.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5, generator=gen)
                mod.bias.uniform_(-0.2, 0.2, generator=gen)
                mod.running_mean.uniform_(-0.1, 0.1, generator=gen)
                mod.running_var.uniform_(0.5, 2.0, generator=gen)
                mod.num_batches_tracked.fill_(7)

    os.makedirs(args.out_dir, exist_ok=True)
    tag = f"unet_b{args.base}"
    if args.size != 32:
        tag += f"_s{args.size}"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(args.out_dir, f"{tag}_init.safetensors"))

    x = torch.randn(args.batch, 1, args.size, args.size, generator=gen)
    target = blob_masks(args.batch, args.size, gen)
    out = {"input": x, "target": target}

    model.eval()
    with torch.no_grad():
        out["logits.eval"] = model(x)
    if not args.no_train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=LR, eps=EPS,
                               weight_decay=WEIGHT_DECAY)
        for step in range(ADAM_STEPS):
            opt.zero_grad()
            logits = model(x)
            total, bce, dice = seg_loss(logits, target)
            total.backward()
            if step == 0:
                out["logits.train"] = logits.detach()
                out["loss.total"] = total.detach().double()
                out["loss.bce"] = bce.detach().double()
                out["loss.dice"] = dice.detach().double()
                for name, p in model.named_parameters():
                    out["grad." + name] = p.grad.detach().clone()
                for name, t in model.state_dict().items():
                    if "running" in name or "num_batches" in name:
                        out["after_train." + name] = t.clone()
            opt.step()
        for name, t in model.state_dict().items():
            out["after3." + name] = t.clone()

    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(args.out_dir, f"{tag}_expected.safetensors"),
              metadata={"torch": torch.__version__, "lr": str(LR), "eps": str(EPS),
                        "weight_decay": str(WEIGHT_DECAY), "adam_steps": str(ADAM_STEPS)})


if __name__ == "__main__":
    main()
