"""PyTorch's CPU attention on the shapes bench/attention-cpu measures, for a side-by-side ratio (issue 17).

Decode-shaped: one query per sequence, 32 query heads, 8 KV heads, head dim 128, dense [B, 8, C, 128] KV (no paging,
which favours PyTorch). Reports KV GB/s read (KV bytes / wall time per call). Usage: python3 torch_sdpa.py [threads]
"""
import sys, time
import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 16
torch.set_num_threads(threads)
print(f"# torch {torch.__version__}, {threads} threads")
print("| storage | batch | context | KV read/call (MB) | ms/call | KV GB/s |")
print("|---|---:|---:|---:|---:|---:|")
for dtype, name in ((torch.float16, "Float16"), (torch.bfloat16, "BFloat16"), (torch.float32, "Float32")):
    for batch in (16, 64):
        for context in (1024, 8192):
            kv_bytes = batch * context * 8 * 128 * 2 * torch.tensor([], dtype=dtype).element_size()
            # Enough copies that one call's KV is not in the last-level cache from the call before.
            copies = max(1, int((1 << 30) // kv_bytes))
            if kv_bytes * copies > (8 << 30):
                continue
            q = torch.randn(batch, 32, 1, 128, dtype=dtype)
            kvs = [(torch.randn(batch, 8, context, 128, dtype=dtype), torch.randn(batch, 8, context, 128, dtype=dtype)) for _ in range(copies)]
            with torch.no_grad():
                for k, v in kvs:
                    F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                calls = 0
                start = time.perf_counter()
                while time.perf_counter() - start < 2.0:
                    k, v = kvs[calls % copies]
                    F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                    calls += 1
                elapsed = time.perf_counter() - start
            ms = elapsed / calls * 1e3
            print(f"| {name} | {batch} | {context} | {kv_bytes / 1e6:.1f} | {ms:.3f} | {kv_bytes / (elapsed / calls) / 1e9:.1f} |", flush=True)
            del kvs
