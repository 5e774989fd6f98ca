#!/usr/bin/env python3
"""Makes the softmax-top-k mixture-of-experts reference fixtures of issue 18 with transformers (GPU machine; CPU is fine).

  python3 make_moe_fixtures.py OUTDIR [--seed 0] [--check]

Writes, each a tiny model with random fp32 weights in the layout of tests/fixtures (see tests/fixtures/README.md):

  qwen2-moe   Qwen2MoeForCausalLM: 8 experts, top-2 softmax routing without renormalization (norm_topk_prob false,
              Qwen1.5-MoE's default), a shared expert behind its sigmoid gate, q/k/v biases (drawn at random: the
              default init makes them zero, which tests nothing), layer 1 dense through mlp_only_layers.
  qwen3-moe   Qwen3MoeForCausalLM: 8 experts, top-2 renormalized (norm_topk_prob true), q/k norms, no shared expert,
              decoder_sparse_step 2 (only layer 1 is MoE, layers 0 and 2 dense).
  mixtral     MixtralForCausalLM: 8 experts, top-2 renormalized, every layer MoE.

All: vocabulary 1024, hidden 64, 3 layers, 4 query / 2 KV heads of 16, expert width 32, dense MLP 128, bos 1, eos 2,
pad 0, initializer_range 0.08 (wider than the default 0.02 so that routing is not a near tie). The references are
computed as make_fixtures.py's (its helpers are imported): eager attention, fp32, CPU, one sequence at a time with the
KV cache, the same four prompts, 12 greedy tokens, top-2 margins, all first-step logits; the next seed is tried when
a margin is below 1e-4. The safetensors' expert tensor names are printed: transformers 5 may save experts per expert
(the Hub's layout) or fused ([E, 2I, H] gate_up); the builder reads both.
"""
import argparse
import json
import os
import sys

from make_fixtures import first_clear_seed, first_logits, save_fixture

COMMON = dict(
    vocab_size=1024,
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
    initializer_range=0.08,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    hidden_act="silu",
)

FIXTURES = {
    "qwen2-moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(
        intermediate_size=128, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
        shared_expert_intermediate_size=48, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
        use_sliding_window=False, rope_theta=1000000.0)),
    "qwen3-moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(
        intermediate_size=128, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
        norm_topk_prob=True, decoder_sparse_step=2, mlp_only_layers=[], use_sliding_window=False,
        attention_bias=False, rope_theta=1000000.0)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(
        intermediate_size=32, num_local_experts=8, num_experts_per_tok=2, sliding_window=None, rope_theta=1000000.0)),
}
BIAS_STD = 0.1


def make_model(torch, transformers, folder, seed):
    config_name, model_name, extra = FIXTURES[folder]
    config = getattr(transformers, config_name)(**COMMON, **extra)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval().to(torch.float32)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    biases = []
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias") and ".self_attn." in name:
                parameter.normal_(0.0, BIAS_STD)
                biases.append(name)
    return model, biases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="reload each folder and compare its first-step logits")
    parser.add_argument("--only", default="", help="comma-separated fixture names (default: all)")
    args = parser.parse_args()
    try:
        import torch
        import transformers
        from safetensors import safe_open
    except ImportError as error:
        raise SystemExit(f"error: make_moe_fixtures.py needs torch, transformers and safetensors ({error})")

    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    wanted = [f for f in args.only.split(",") if f] or list(FIXTURES)
    for folder in wanted:
        (model, biases), cases, smallest, seed = first_clear_seed(
            torch, folder, args.seed, lambda seed, name=folder: make_model(torch, transformers, name, seed))
        path = save_fixture(torch, transformers, model, os.path.join(args.outdir, folder), cases, seed)

        if args.check:
            cls = getattr(transformers, FIXTURES[folder][1])
            reloaded = cls.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()
            for i, (a, b) in enumerate(zip(first_logits(torch, model), first_logits(torch, reloaded))):
                worst = float((a - b).abs().max())
                if worst > 1e-5:
                    raise SystemExit(f"error: {folder}: reloaded prompt {i} differs by {worst}")

        with safe_open(os.path.join(path, "model.safetensors"), "pt") as f:
            names = sorted(k for k in f.keys() if k.startswith("model.layers.0.") or k.startswith("model.layers.1."))
            shapes = {k: list(f.get_slice(k).get_shape()) for k in names if "experts.1" not in k and "experts.2" not in k
                      and "experts.3" not in k and "experts.4" not in k and "experts.5" not in k and "experts.6" not in k
                      and "experts.7" not in k}
        sizes = {name: os.path.getsize(os.path.join(path, name)) for name in sorted(os.listdir(path))}
        print(f"{folder}: seed {seed}, smallest top-2 margin {smallest:.4g}, random biases {len(biases)}, files {sizes}")
        print(f"  tensors of layers 0-1 (experts 1-7 left out): {json.dumps(shapes)}")
        for case in cases:
            print(f"  prompt {case['prompt'][:5]}... greedy {case['greedy']}")
        if any(size >= 2 * 1024 * 1024 for size in sizes.values()):
            raise SystemExit(f"error: {folder}: a file is 2 MB or more")
    print("transformers", transformers.__version__, "torch", torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
