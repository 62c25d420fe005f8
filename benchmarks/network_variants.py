# SPDX-License-Identifier: Apache-2.0
"""Precision and memory-layout variants of the prior's network on the GPU (graph-replayed).

For each variant: ms per epsilon evaluation at each size (CUDA-graph replay, median) and the
relative error of its output against float32 on the same random inputs. Prints a table and
writes JSON.

    python benchmarks/network_variants.py --sizes 256x256,512x512 --out variants.json
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from codedap_depth.evaluation import device_name
from codedap_depth.prior import load_prior
from codedap_depth.tools.bench import stage_ms

VARIANTS = {  # name: (weight dtype, autocast dtype or None, channels_last)
    "fp32 weights, bf16 autocast, channels_last": (torch.float32, torch.bfloat16, True),
    "fp32 weights, bf16 autocast, NCHW": (torch.float32, torch.bfloat16, False),
    "bf16 weights, channels_last": (torch.bfloat16, None, True),
    "bf16 weights, NCHW": (torch.bfloat16, None, False),
    "fp16 weights, NCHW": (torch.float16, None, False),
    "fp32 (tf32 off), NCHW": (torch.float32, None, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x256,512x512")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = False  # a full-float32 reference
    prior = load_prior("cuda")
    base = prior.unet.to(memory_format=torch.contiguous_format).float()
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        g = torch.Generator("cuda").manual_seed(0)
        x = torch.randn(1, 3, height, width, device="cuda", generator=g)
        t = torch.full((1,), 600, device="cuda", dtype=torch.long)
        with torch.no_grad():
            reference = base(x, t).sample.float()
        for name, (dtype, autocast, last) in VARIANTS.items():
            unet = copy.deepcopy(base).to(dtype)
            fmt = torch.channels_last if last else torch.contiguous_format
            unet = unet.to(memory_format=fmt)

            def eps(a: torch.Tensor, b: torch.Tensor, unet=unet, dtype=dtype, fmt=fmt,
                    autocast=autocast) -> torch.Tensor:
                a = a.to(dtype).contiguous(memory_format=fmt)
                with torch.autocast("cuda", dtype=autocast or torch.float32,
                                    enabled=autocast is not None):
                    return unet(a, b).sample.float()

            with torch.no_grad():
                err = float((eps(x, t) - reference).norm() / reference.norm())
                ms = stage_ms(eps, x, t, repeat=20)
            rows.append({"size": size, "variant": name, "ms": ms, "relative_error": err})
            print(f"{size:>8}  {ms:7.3f} ms  err {err:.1e}  {name}", flush=True)
    args.out.write_text(json.dumps({"device": device_name("cuda"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
