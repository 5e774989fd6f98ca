// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting.CommandLine;

/// <summary>
/// The one table of the server's flags: <see cref="ServerCommandLine"/> parses and checks the command line against it,
/// <see cref="HelpText"/> prints it, and README.md's option table lists the same flags. Each flag's name is also its
/// configuration key, so environment variables and appsettings.json set the same options.
/// </summary>
internal static class ServerFlags
{
    /// <summary>Every flag, in the order <c>--help</c> shows them.</summary>
    public static IReadOnlyList<FlagDefinition> All { get; } =
    [
        // Model
        new("model", FlagKind.String, "models/tiny-pycoder", "model folder (ONNX), checkpoint folder (config.json + *.safetensors, built once into --build-cache) or Hugging Face hub id <org>/<name> (from the local hub cache, else downloaded)") { Vllm = "--model" },
        new("revision", FlagKind.String, "main", "hub revision (branch, tag or commit) of a --model <org>/<name>") { Vllm = "--revision" },
        new("served-model-name", FlagKind.Repeatable, "folder name", "model ids clients may send; the first is the one reported") { Vllm = "--served-model-name" },
        new("build-cache", FlagKind.String, "~/.cache/inferenceserver/builds", "where a checkpoint --model is built on first start (must be writable then)"),
        new("dtype", FlagKind.Enum, "auto", "element type a checkpoint --model is built in; auto is fp16 for --device cuda, else fp32") { Values = ["auto", "fp32", "fp16", "bf16", "int4"], Vllm = "--dtype" },
        new("chat-template", FlagKind.String, null, "Jinja file that sets or replaces the model's chat template") { Vllm = "--chat-template" },
        new("max-model-len", FlagKind.Int, "model's maximum", "longest sequence (prompt + completion); at most the model's max_position_embeddings") { Vllm = "--max-model-len" },

        // Listening
        new("host", FlagKind.String, "localhost", "address to listen on (with --port; instead of --urls)") { Vllm = "--host" },
        new("port", FlagKind.Int, "5000", "port to listen on (with --host; instead of --urls)") { Vllm = "--port" },
        new("urls", FlagKind.String, "http://localhost:5000", "ASP.NET Core listen URL(s), ';'-separated; not with --host/--port"),
        new("max-request-timeout", FlagKind.Seconds, "600", "longest a generation may take"),
        new("max-request-body-size", FlagKind.Size, "4m", "larger request bodies are refused with 413"),
        new("max-connections", FlagKind.Int, "min(4096, 80% of ulimit -n - 128)", "most open connections over all listeners (HTTP and gRPC); more are closed on arrival"),
        new("keep-alive-timeout", FlagKind.Seconds, "75", "idle keep-alive connections are closed after this long") { Vllm = "--timeout-keep-alive" },
        new("api-key", FlagKind.Repeatable, null, "require Authorization: Bearer <key> on every route but the health probes (and /metrics), and on every gRPC method but health and reflection") { Vllm = "--api-key" },
        new("allowed-origins", FlagKind.String, "*", "CORS origins, JSON array or comma-separated") { Vllm = "--allowed-origins" },
        new("allowed-methods", FlagKind.String, "*", "CORS methods") { Vllm = "--allowed-methods" },
        new("allowed-headers", FlagKind.String, "*", "CORS request headers") { Vllm = "--allowed-headers" },
        new("allow-credentials", FlagKind.Bool, "false", "CORS credentials") { Vllm = "--allow-credentials" },
        new("metrics-require-key", FlagKind.Bool, "false", "/metrics needs the --api-key too"),

        // Engine
        new("device", FlagKind.String, "auto", "where the model runs: auto, cpu, cuda or cuda:N") { Vllm = "--device" },
        new("kv-cache-memory", FlagKind.Sizes, "256m", "KV-cache size in bytes (k/m/g suffixes) or a fraction (0, 1] of free memory; with several --attention-device entries split evenly, or one size per entry (e.g. 20g,64g: a GPU pool, then a host pool); not with --gpu-memory-utilization") { Vllm = "--kv-cache-memory" },
        new("host-kv-cache-memory", FlagKind.Size, "0", "host KV tier in bytes (k/m/g suffixes) or a fraction (0, 1] of available memory: preempted sequences' blocks are copied there and back instead of recomputed, and evicted prefix-cache blocks stay there; 0 = off"),
        new("gpu-memory-utilization", FlagKind.Fraction, null, "fraction of the GPU's memory for weights + KV cache (KV = fraction x total - in use after the weights load); no effect on the CPU; not with --kv-cache-memory") { Vllm = "--gpu-memory-utilization" },
        new("attention-device", FlagKind.Repeatable, null, "where attention runs: cpu or cuda:N, comma-separated or repeated"),
        new("split-one-stream", FlagKind.Bool, "auto", "with --attention-device on a CUDA --device, queue a step's segments and same-GPU attention on one CUDA stream and synchronize once per step instead of after every call; auto (the default) does so for the local split (attention on the compute GPU) only"),
        new("kv-cache-dtype", FlagKind.Enum, "auto", "element type of the host KV pools of cpu attention devices: auto (the model's: float32 for a CPU split, the segments' on a GPU), float32, float16 or bfloat16 (halves a CPU split's KV); fp8 is not supported") { Vllm = "--kv-cache-dtype", Values = ["auto", "float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2"] },
        new("attention-overlap", FlagKind.Enum, "auto", "with cpu attention devices, run a step as two micro-batches so host attention overlaps the dense segments: auto (when attention takes longer than the dense segments), on, off") { Values = ["auto", "on", "off", "true", "false"] },
        new("prefill-attention", FlagKind.Enum, "auto", "with cpu attention devices, where a prompt's first chunk attends over itself: compute (the compute device, GroupQueryAttention; the host only stores its KV; GQA and MoH models), host (the memory device, as every other row), or auto (compute on a CUDA --device where it applies, else host)") { Values = ["auto", "host", "compute"] },
        new("prefill-attention-min-tokens", FlagKind.Int, "128", "with --prefill-attention compute, the fewest new tokens a prompt's first chunk needs to attend on the compute device (shorter ones cost less on the host than a launch)"),
        new("warmup", FlagKind.Bool, "auto", "run every captured decode batch and every power-of-two prompt step up to --max-num-batched-tokens once before taking requests, so CUDA-graph captures and ONNX Runtime's MoE tactic profiling do not stall the first requests; auto (the default) does so on the paged CUDA runner and the local split that captures its decode steps"),
        new("block-size", FlagKind.Int, "16", "tokens per KV block") { Vllm = "--block-size" },
        new("max-num-seqs", FlagKind.Int, "64", "most sequences per model step") { Vllm = "--max-num-seqs" },
        new("max-num-batched-tokens", FlagKind.Int, "2048", "most new tokens per model step") { Vllm = "--max-num-batched-tokens" },
        new("max-queued-requests", FlagKind.Int, "1024", "queued sequences before 429 / RESOURCE_EXHAUSTED"),
        new("max-queued-tokens", FlagKind.Int, "1048576", "queued prompt tokens before 429"),
        new("max-consecutive-step-failures", FlagKind.Int, "3", "failed model steps in a row before the engine reports not ready"),
        new("fault-cooldown", FlagKind.Seconds, "30", "how long an unhealthy engine refuses work"),
        new("enable-prefix-caching", FlagKind.Bool, "true", "reuse full KV blocks across requests with the same prefix") { Vllm = "--enable-prefix-caching" },
        new("cuda-graphs", FlagKind.Bool, "true", "replay paged CUDA decode steps, and the local split's (--attention-device cuda:N on --device cuda:N), as CUDA graphs (false: vLLM's --enforce-eager)"),
        new("cuda-graph-max-batch", FlagKind.Int, "256", "most decode rows captured as one CUDA graph (buckets 1, 2, 4, 8, 16, 24, ...; capped by --max-num-seqs)"),
        new("deterministic", FlagKind.Bool, "false", "batch-invariant greedy decoding on paged CUDA graphs: fixed-shape decode steps, prompts alone in fixed chunks, no prefix caching"),
        new("threads", FlagKind.Int, "0", "ONNX Runtime intra-op threads; 0 uses every core"),
        new("onnx-graph-rewrite", FlagKind.Bool, "true", "rewrite Hugging Face exports at load (ADR 0004)"),
        new("onnx-spinning", FlagKind.Enum, "never", "when ONNX Runtime's threads spin") { Values = ["never", "step", "always", "true", "false"] },

        // gRPC
        new("grpc-port", FlagKind.Int, "off", "open the gRPC API on this port (0 picks a free one)"),
        new("grpc-host", FlagKind.String, "host of the first URL", "address the gRPC port binds"),
        new("grpc-tls-certificate", FlagKind.String, null, "PEM certificate (with --grpc-tls-key) or PKCS#12 file: gRPC over TLS"),
        new("grpc-tls-key", FlagKind.String, null, "PEM key of --grpc-tls-certificate"),
        new("grpc-max-buffered-chunks", FlagKind.Int, "1024", "chunks one Generate call may have waiting for a slow client"),
        new("grpc-max-message-size", FlagKind.Size, "4m", "largest gRPC message received"),

        // Operations
        new("log-format", FlagKind.Enum, "text", "stdout log lines: text, or one JSON object per line") { Values = ["text", "json"] },
        new("log-requests", FlagKind.Bool, "false", "also log each request's prompt"),
        new("shutdown-timeout", FlagKind.Seconds, "30", "after SIGTERM, how long requests in flight get to finish"),
        new("engine-stall-timeout", FlagKind.Seconds, "60", "readiness fails when the engine has work but made no progress for this long"),
        new("liveness-stall-timeout", FlagKind.Seconds, "300", "liveness fails when the engine has been stalled for this long"),
    ];

    /// <summary>
    /// ASP.NET Core's own command-line keys (host settings), accepted and passed on as they are. Keys with a colon
    /// (<c>--Logging:LogLevel:Default</c>, <c>--Kestrel:...</c>) are configuration paths and pass on too.
    /// </summary>
    public static IReadOnlyList<string> HostKeys { get; } =
        ["environment", "contentRoot", "applicationName", "http_ports", "https_ports", "hostingStartupAssemblies", "hostingStartupExcludeAssemblies", "preventHostingStartup", "webroot", "detailedErrors", "shutdownTimeoutSeconds", "suppressStatusMessages", "allowedHosts"];

    /// <summary>The flag named <paramref name="name"/> (case-insensitive, <c>_</c> read as <c>-</c>), or null.</summary>
    public static FlagDefinition? Find(string name)
    {
        var normalized = name.Replace('_', '-');
        foreach (var flag in All)
        {
            if (string.Equals(flag.Name, normalized, StringComparison.OrdinalIgnoreCase))
            {
                return flag;
            }
        }

        return null;
    }
}
