"""Reads a dataset cache written by tests/test_preprocess_cache.c with the
Python safetensors package and checks every byte against the pattern the
test used. Usage: check_cache.py PATH COUNT SIDE. Exit 0 when all agree."""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def main():
    path, count, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tensors = load_file(path)
    images, masks, uids = tensors["images"], tensors["masks"], tensors["sop_instance_uids"]
    assert images.dtype == np.uint8 and images.shape == (count, 1, side, side), images.shape
    assert masks.dtype == np.uint8 and masks.shape == (count, 1, side, side), masks.shape
    assert uids.dtype == np.uint8 and uids.shape == (count, 64), uids.shape
    i = np.arange(count).reshape(count, 1, 1, 1)
    y = np.arange(side).reshape(1, 1, side, 1)
    x = np.arange(side).reshape(1, 1, 1, side)
    expect_images = ((i * 31 + y * 7 + x * 3) & 255).astype(np.uint8)
    expect_masks = ((x + y + i) % 5 == 0).astype(np.uint8)
    assert np.array_equal(images, expect_images)
    assert np.array_equal(masks, expect_masks)
    for k in range(count):
        uid = bytes(uids[k]).rstrip(b"\0").decode("ascii")
        assert uid == "1.2.840.%d" % (1000 + k), uid
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "pneumoseg-dataset-cache", meta
    assert meta["count"] == str(count) and meta["image_size"] == str(side), meta
    assert meta["split"] == "val", meta
    print("python safetensors: ok")


if __name__ == "__main__":
    main()
