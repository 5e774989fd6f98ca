#!/usr/bin/env python3
"""Writes a DeepSeek-V2-Lite-shaped DeepseekV3ForCausalLM checkpoint with random weights, for issue 18's GPU run.

  python3 make_checkpoint.py OUTDIR [--shape v2lite|dense1b] [--layers N] [--seed 0] [--device auto|cpu|cuda]

V2-Lite's shape: vocabulary 102400, hidden 2048, 16 heads, no query LoRA, kv_lora_rank 512, qk_rope_head_dim 64,
qk_nope_head_dim 128, v_head_dim 128, the first layer's MLP dense (10944), the others 64 routed experts (1408) top-6
plus 2 shared, 4096 positions, in bf16. As DeepseekV3 (what the builder reads): sigmoid routing with a correction
bias, one group (V2-Lite routes by softmax; the shape, not the routing, is what the benchmark measures).
--layers below 27 keeps the run inside one device call (the report says which count was used).

--shape dense1b: issue 18's dense MLA model of the Llama-3.2-1B GQA shape (vocabulary 128256, hidden 2048, 16 layers,
32 heads, kv_lora_rank 256, qk_rope_head_dim 64, qk_nope_head_dim and v_head_dim 64, every MLP dense 8192, tied
embeddings, bos 128000, eos 128001): 10 KiB of cache per token in 16 bits against the GQA model's 32 KiB.

transformers 5 may store each MoE layer's experts fused ([E, 2I, H] gate_up, [E, H, I] down); the saved files are
rewritten with the per-expert tensor names of published DeepSeek checkpoints (experts.{e}.gate_proj.weight, ...),
which is what the builder and every transformers version read. The last line printed is a JSON summary.
"""
import argparse
import json
import os
import sys
import time

SHAPE = dict(
    vocab_size=102400,
    hidden_size=2048,
    intermediate_size=10944,
    moe_intermediate_size=1408,
    num_attention_heads=16,
    num_key_value_heads=16,
    q_lora_rank=None,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    qk_nope_head_dim=128,
    v_head_dim=128,
    n_routed_experts=64,
    num_experts_per_tok=6,
    n_shared_experts=2,
    first_k_dense_replace=1,
    n_group=1,
    topk_group=1,
    norm_topk_prob=False,
    routed_scaling_factor=1.0,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    initializer_range=0.02,
    rope_interleave=True,
    tie_word_embeddings=False,
    bos_token_id=100000,
    eos_token_id=100001,
    hidden_act="silu",
)


DENSE1B = dict(
    SHAPE,
    vocab_size=128256,
    intermediate_size=8192,
    num_attention_heads=32,
    num_key_value_heads=32,
    kv_lora_rank=256,
    qk_rope_head_dim=64,
    qk_nope_head_dim=64,
    v_head_dim=64,
    first_k_dense_replace=10**6,
    tie_word_embeddings=True,
    # Room for run-dense1b-vs-gqa.sh's capacity level (4,000 + 256 tokens): at V2-Lite's 4,096 the server refused every
    # request of it (2026-12-07 H100, run 8). The GQA 1B it is measured against has 131,072.
    max_position_embeddings=8192,
    bos_token_id=128000,
    eos_token_id=128001,
)
SHAPES = {"v2lite": (SHAPE, 27), "dense1b": (DENSE1B, 16)}


def unfuse_experts(torch, path, intermediate, hidden):
    """Rewrites fused expert tensors (transformers 5) as per-expert ones; returns how many were split."""
    from safetensors.torch import load_file, save_file

    split = 0
    for name in sorted(os.listdir(path)):
        if not name.endswith(".safetensors"):
            continue
        file = os.path.join(path, name)
        tensors = load_file(file)
        # Routed experts fused as [E, ...] (3-D); the shared experts' own 2-D projections ("shared_experts.down_proj.weight")
        # end the same way and stay as they are.
        fused = [k for k in tensors if tensors[k].dim() == 3 and (k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj")
                 or k.endswith("experts.gate_up_proj.weight") or k.endswith("experts.down_proj.weight"))]
        if not fused:
            continue
        for key in fused:
            value = tensors.pop(key)
            prefix = key[: key.index("experts.") + len("experts.")]
            if "gate_up" in key:
                if value.shape[1] != 2 * intermediate:  # [E, H, 2I]
                    value = value.transpose(1, 2)
                for e in range(value.shape[0]):
                    tensors[f"{prefix}{e}.gate_proj.weight"] = value[e, :intermediate].contiguous()
                    tensors[f"{prefix}{e}.up_proj.weight"] = value[e, intermediate:].contiguous()
            else:
                if value.shape[1] != hidden:  # [E, I, H]
                    value = value.transpose(1, 2)
                for e in range(value.shape[0]):
                    tensors[f"{prefix}{e}.down_proj.weight"] = value[e].contiguous()
            split += 1
        save_file(tensors, file, metadata={"format": "pt"})
    index = os.path.join(path, "model.safetensors.index.json")
    if split and os.path.exists(index):
        # Rebuild the weight map from the files as they are now.
        from safetensors import safe_open

        weight_map = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                with safe_open(os.path.join(path, name), "pt") as f:
                    for key in f.keys():
                        weight_map[key] = name
        with open(index) as f:
            data = json.load(f)
        data["weight_map"] = weight_map
        with open(index, "w") as f:
            json.dump(data, f, indent=2)
    return split


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="v2lite")
    parser.add_argument("--layers", type=int, help="default: the shape's own (27 for v2lite, 16 for dense1b)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    try:
        import torch
        import transformers
    except ImportError as error:
        raise SystemExit(f"error: make_checkpoint.py needs torch and transformers ({error})")

    started = time.time()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    shape, default_layers = SHAPES[args.shape]
    args.layers = args.layers or default_layers
    shape = dict(shape, first_k_dense_replace=min(shape["first_k_dense_replace"], args.layers))
    config = transformers.DeepseekV3Config(num_hidden_layers=args.layers, **shape)
    torch.manual_seed(args.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = transformers.DeepseekV3ForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.bos_token_id = shape["bos_token_id"]
    model.generation_config.eos_token_id = shape["eos_token_id"]
    os.makedirs(args.outdir, exist_ok=True)
    model.save_pretrained(args.outdir, max_shard_size="4GB")
    split = unfuse_experts(torch, args.outdir, SHAPE["moe_intermediate_size"], SHAPE["hidden_size"])
    parameters = sum(p.numel() for p in model.parameters())
    summary = dict(shape=args.shape, layers=args.layers, parameters=parameters, seed=args.seed, device=device, fused_expert_tensors_split=split,
                   seconds=round(time.time() - started, 1), transformers=transformers.__version__, torch=torch.__version__)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
