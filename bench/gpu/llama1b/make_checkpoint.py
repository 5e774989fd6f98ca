#!/usr/bin/env python3
"""Writes a Llama-3.2-1B-shaped Hugging Face checkpoint with random weights, for benchmarks on the GPU machine.

  python3 make_checkpoint.py OUTDIR [--shape 1b|8b|tiny] [--tiny] [--seed 0] [--device auto|cpu|cuda]

The shape is Llama-3.2-1B's: vocabulary 128256, hidden 2048, 16 layers, 32 query and 8 KV heads of 64, MLP 8192,
tied embeddings, RoPE theta 500000 with llama3 scaling (factor 32, low/high frequency factors 1 and 4, original
context 8192), 131072 positions, RMSNorm eps 1e-5, bos 128000, eos 128001. The weights are transformers' default
initialisation (normal, std 0.02; norms 1) after torch.manual_seed(seed), saved in bf16 as safetensors with
config.json and generation_config.json. There is no tokenizer: the server then serves token-id prompts only.

--shape 8b writes Llama-3.1-8B's shape instead: vocabulary 128256, hidden 4096, 32 layers, 32 query and 8 KV heads
of 128, MLP 14336, an untied LM head, llama3 RoPE scaling with factor 8 (about 16 GB in bf16; initialised on the GPU).
--tiny (= --shape tiny) writes the 1B architecture with 2 layers, hidden 256 (4 query / 1 KV heads of 64) and MLP 1024, for quick
checks of the pipeline. Only torch, transformers and safetensors are needed.
"""
import argparse
import json
import os
import sys
import time

FULL = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
)
TINY = dict(
    vocab_size=128256,
    hidden_size=256,
    intermediate_size=1024,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=64,
)
LLAMA8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
)
SHAPES = {"1b": FULL, "8b": LLAMA8B, "tiny": TINY}
ROPE = dict(
    rope_type="llama3",
    factor=32.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=8192,
)
ROPE_THETA = 500000.0
BOS, EOS = 128000, 128001


def tied(shape):
    """Llama-3.2-1B ties its LM head to the embeddings; Llama-3.1-8B does not."""
    return shape != "8b"


def rope(shape):
    """Llama-3.1-8B's llama3 RoPE scaling has factor 8; Llama-3.2-1B's 32."""
    return dict(ROPE, factor=8.0) if shape == "8b" else dict(ROPE)


def make_config(transformers, shape):
    """A LlamaConfig of the shape; transformers 5 takes RoPE as rope_parameters, 4.x as rope_theta + rope_scaling."""
    common = dict(
        SHAPES[shape],
        hidden_act="silu",
        max_position_embeddings=131072,
        initializer_range=0.02,
        rms_norm_eps=1e-5,
        use_cache=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        tie_word_embeddings=tied(shape),
        attention_bias=False,
        mlp_bias=False,
    )
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        config = transformers.LlamaConfig(rope_parameters=dict(rope(shape), rope_theta=ROPE_THETA), **common)
    else:
        config = transformers.LlamaConfig(rope_theta=ROPE_THETA, rope_scaling=rope(shape), **common)
    return config


def complete_config(path, shape):
    """Writes the fields that save_pretrained may leave out as defaults (transformers 4.x drops
    tie_word_embeddings=true, its base-class default) so that readers other than transformers see them."""
    with open(path) as f:
        saved = json.load(f)
    added = []
    for key, value in (("tie_word_embeddings", tied(shape)), ("bos_token_id", BOS), ("eos_token_id", EOS)):
        if key not in saved:
            saved[key] = value
            added.append(key)
    if added:
        with open(path, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
            f.write("\n")
    return added


def check_config(path, shape):
    """Reads config.json back and fails on any field that is not what the benchmark promises."""
    with open(path) as f:
        saved = json.load(f)
    problems = []
    for key, value in SHAPES[shape].items():
        if saved.get(key) != value:
            problems.append(f"{key}={saved.get(key)!r}, expected {value!r}")
    for key, value in (("max_position_embeddings", 131072), ("rms_norm_eps", 1e-5), ("bos_token_id", BOS),
                       ("eos_token_id", EOS), ("tie_word_embeddings", tied(shape))):
        if saved.get(key) != value:
            problems.append(f"{key}={saved.get(key)!r}, expected {value!r}")
    saved_rope = saved.get("rope_parameters") or saved.get("rope_scaling") or {}
    theta = saved_rope.get("rope_theta", saved.get("rope_theta"))
    if theta != ROPE_THETA:
        problems.append(f"rope_theta={theta!r}, expected {ROPE_THETA}")
    for key, value in rope(shape).items():
        if key == "rope_type":
            got = saved_rope.get("rope_type", saved_rope.get("type"))
        else:
            got = saved_rope.get(key)
        if got != value:
            problems.append(f"rope {key}={got!r}, expected {value!r}")
    if problems:
        raise SystemExit(f"error: {path} does not have the intended shape: " + "; ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--tiny", action="store_true", help="2 layers, hidden 256: a quick check of the pipeline")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None, help="1b (default), 8b (Llama-3.1-8B's shape) or tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="where to initialise: auto (cuda when available), cpu, cuda")
    args = parser.parse_args()

    try:
        import torch
        import transformers
    except ImportError as error:
        raise SystemExit(f"error: make_checkpoint.py needs torch and transformers ({error})")

    started = time.time()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = args.shape or ("tiny" if args.tiny else "1b")
    config = make_config(transformers, shape)
    torch.manual_seed(args.seed)
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config)
    except Exception as error:  # noqa: BLE001 - initialising under a device context is an optimisation only
        if device == "cpu":
            raise
        print(f"warning: initialising on {device} failed ({error}); initialising on the CPU", file=sys.stderr, flush=True)
        device = "cpu"
        torch.manual_seed(args.seed)
        model = transformers.LlamaForCausalLM(config)
    model = model.to(torch.bfloat16).eval()
    if tied(shape):
        model.tie_weights()
        if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
            raise SystemExit("error: lm_head is not tied to embed_tokens")

    # The default initialisation keeps activations finite: check on a short prompt before saving.
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    ids = torch.randint(10, 128000, (1, 32), generator=generator).to(device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    if not torch.isfinite(logits).all():
        raise SystemExit("error: the random model gives non-finite logits")
    top2 = logits[0].topk(2, dim=-1).values
    gap = (top2[:, 0] - top2[:, 1]).median().item()

    os.makedirs(args.outdir, exist_ok=True)
    try:
        model.save_pretrained(args.outdir, safe_serialization=True)
    except TypeError:
        # A transformers that writes safetensors only may have dropped the argument.
        model.save_pretrained(args.outdir)
    if not any(name.endswith(".safetensors") for name in os.listdir(args.outdir)):
        raise SystemExit(f"error: save_pretrained wrote no .safetensors file in {args.outdir}")
    generation = transformers.GenerationConfig(bos_token_id=BOS, eos_token_id=EOS)
    generation.save_pretrained(args.outdir)
    config_path = os.path.join(args.outdir, "config.json")
    added = complete_config(config_path, shape)
    check_config(config_path, shape)
    files = sorted(os.listdir(args.outdir))
    size = sum(os.path.getsize(os.path.join(args.outdir, name)) for name in files)
    parameters = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "checkpoint": os.path.abspath(args.outdir),
        "tiny": shape == "tiny",
        "shape": shape,
        "parameters": parameters,
        "files": files,
        "bytes": size,
        "seed": args.seed,
        "init_device": device,
        "config_fields_added": added,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "logits_std": round(logits.std().item(), 4),
        "median_top2_logit_gap": round(gap, 5),
        "seconds": round(time.time() - started, 1),
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
