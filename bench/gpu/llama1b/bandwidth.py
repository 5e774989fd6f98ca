#!/usr/bin/env python3
"""The device's copy bandwidth, for the decode bandwidth bound: a device-to-device copy of a 2 GiB buffer, timed with
CUDA events over 20 copies after 3 warm-ups. Bandwidth = bytes read + bytes written per second.

  python3 bandwidth.py OUT.json [--bytes 2147483648] [--weights FILE...]

With --weights, also the bound on concurrency-1 decode: each token reads every weight once, so
tok/s <= bandwidth / weight bytes (the files' total size: model.onnx.data of the built model).
"""
import argparse
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--bytes", type=int, default=2 << 30)
    parser.add_argument("--weights", nargs="*", default=[])
    args = parser.parse_args()
    import torch

    source = torch.empty(args.bytes, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    for _ in range(3):
        target.copy_(source)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    copies = 20
    torch.cuda.synchronize()
    start.record()
    for _ in range(copies):
        target.copy_(source)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000
    bandwidth = 2 * args.bytes * copies / seconds
    weights = sum(os.path.getsize(path) for path in args.weights if os.path.exists(path))
    result = {
        "device": torch.cuda.get_device_name(0),
        "copy_bytes": args.bytes,
        "bandwidth_bytes_per_s": bandwidth,
        "weights_bytes": weights or None,
        "weights_files": args.weights,
        "bound_tokens_per_s_c1": bandwidth / weights if weights else None,
        "bound_ms_per_token_c1": weights / bandwidth * 1000 if weights else None,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s on {result['device']}"
          + (f"; weights {weights / 1e9:.2f} GB -> bound {bandwidth / weights:,.0f} tok/s at concurrency 1" if weights else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
