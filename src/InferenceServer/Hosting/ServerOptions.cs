// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;
using InferenceServer.Observability;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Grpc;
using InferenceServer.Hosting.CommandLine;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>
/// The server's command-line options (<c>--model</c>, <c>--served-model-name</c>, scheduler and KV-cache limits),
/// read from configuration so that environment variables and appsettings work too. Bound once at start
/// (<see cref="ServerOptionsBinder"/>, which reads each flag of <see cref="ServerFlags"/> as its kind), validated once
/// (<see cref="ServerOptionsValidator"/>; every message names the flag), and immutable afterwards: every property is
/// init-only.
/// </summary>
internal sealed class ServerOptions
{
    /// <summary>The model folder; null serves the embedded default, <c>models/tiny-pycoder</c>.</summary>
    public string? Model { get; init; }

    /// <summary>The model id clients use and responses report (the first <c>--served-model-name</c>); default: the folder name.</summary>
    public string? ServedModelName => ServedModelNames.Count > 0 ? ServedModelNames[0] : null;

    /// <summary><c>--served-model-name a b ...</c>: every id clients may send as <c>model</c>; empty for the folder name.</summary>
    public IReadOnlyList<string> ServedModelNames { get; init; } = [];

    /// <summary><c>--revision</c>: the hub revision of a <c>--model &lt;org&gt;/&lt;name&gt;</c>. Default <c>main</c>.</summary>
    public string Revision { get; init; } = "main";

    /// <summary><c>--build-cache</c>: where checkpoints are built; null for <see cref="CheckpointBuilds.DefaultCacheRoot"/>.</summary>
    public string? BuildCache { get; init; }

    /// <summary><c>--max-model-len</c>: caps the context (prompt + completion) below the model's maximum; null for the model's.</summary>
    public int? MaxModelLength { get; init; }

    /// <summary>
    /// <c>--gpu-memory-utilization</c>: the fraction of the GPU's memory for weights and KV cache, as vLLM means it (the
    /// KV budget is this fraction of the total minus what is in use once the weights are loaded); null when not given.
    /// No effect on the CPU. Not together with <c>--kv-cache-memory</c>.
    /// </summary>
    public double? GpuMemoryUtilization { get; init; }

    /// <summary><c>--chat-template</c>: a Jinja file that sets or replaces the model's chat template.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>
    /// <c>--dtype auto|fp32|fp16|bf16</c>: the element type a <c>--model &lt;checkpoint folder&gt;</c> is built in.
    /// <c>auto</c> (the default) is fp16 when <c>--device</c> names CUDA, else fp32.
    /// </summary>
    public string DType { get; init; } = "auto";

    /// <summary>Batcher and KV-cache limits.</summary>
    public required SchedulerOptions Scheduler { get; init; }

    /// <summary>
    /// Whether <c>--kv-cache-memory</c> was given (rather than its default): it and <c>--gpu-memory-utilization</c> both
    /// size the KV cache, so only one may be.
    /// </summary>
    public bool KvCacheMemoryGiven { get; init; }

    /// <summary>How ONNX Runtime runs the model (<c>--threads</c>, <c>--onnx-spinning</c>, <c>--onnx-graph-rewrite</c>).</summary>
    public required OnnxSessionOptions Session { get; init; }

    /// <summary>Per-request limits of the HTTP API (<c>--max-request-timeout</c>, <c>--max-request-body-size</c>).</summary>
    public required ServingLimits Limits { get; init; }

    /// <summary>The gRPC listener (<c>--grpc-*</c>).</summary>
    public GrpcServerOptions Grpc { get; init; } = new();

    /// <summary><c>--log-format</c>: <c>text</c> (default; readable on a terminal) or <c>json</c> (one compact JSON object per line, for containers).</summary>
    public LogFormat LogFormat { get; init; }

    /// <summary><c>--log-requests</c>: log each request's prompt. Default false: no prompt text in logs.</summary>
    public bool LogRequests { get; init; }

    /// <summary><c>--shutdown-timeout</c> (seconds): how long in-flight requests get after SIGTERM before they are cancelled. Default 30 s.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary><c>--engine-stall-timeout</c> (seconds): readiness fails when the engine has work but made no progress for this long. Default 60 s.</summary>
    public TimeSpan EngineStallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary><c>--max-connections</c>: the most open connections over all listeners; null (the default) derives it from the descriptor limit (<see cref="Http.ConnectionLimits"/>).</summary>
    public int? MaxConnections { get; init; }

    /// <summary><c>--keep-alive-timeout</c> (seconds): an idle connection (and one whose request headers take longer) is closed after this long. Default 75 s.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = Http.ConnectionLimits.DefaultKeepAliveTimeout;

    /// <summary><c>--metrics-require-key</c>: <c>/metrics</c> needs the <c>--api-key</c> too. Default false: open, like the health probes.</summary>
    public bool MetricsRequireKey { get; init; }

    /// <summary>
    /// <c>--liveness-stall-timeout</c> (seconds): <c>/health/live</c> answers 503 when the engine has work but made no
    /// progress for this long, so that an orchestrator restarts the process. Default 300 s.
    /// </summary>
    public TimeSpan LivenessStallTimeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>
    /// Reads and validates the options once: <see cref="ServerOptionsBinder.Bind"/>, then
    /// <see cref="ServerOptionsValidator"/>. Throws <see cref="FormatException"/> naming the option on a bad value.
    /// </summary>
    public static ServerOptions FromConfiguration(IConfiguration configuration)
    {
        var options = ServerOptionsBinder.Bind(configuration);
        ServerOptionsValidator.ThrowIfInvalid(options);
        return options;
    }
}
