// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Observability;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Grpc;
using InferenceServer.Hosting.CommandLine;
using InferenceServer.Http;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>
/// The server's command-line options (<c>--model</c>, <c>--served-model-name</c>, scheduler and KV-cache limits),
/// read from configuration so that environment variables and appsettings work too.
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

    /// <summary>Reads the options; throws <see cref="FormatException"/> naming the option on a bad value.</summary>
    public static ServerOptions FromConfiguration(IConfiguration configuration)
    {
        var defaults = new SchedulerOptions();
        var utilization = ReadFraction(configuration, "gpu-memory-utilization");
        if (utilization is not null && !string.IsNullOrEmpty(configuration["kv-cache-memory"]))
        {
            throw new FormatException("--gpu-memory-utilization and --kv-cache-memory both size the KV cache; give only one");
        }

        int? maxModelLength = string.IsNullOrEmpty(configuration["max-model-len"]) ? null : ReadInt(configuration, "max-model-len", 0, 1);
        return new ServerOptions
        {
            Model = NullIfEmpty(configuration["model"]),
            ServedModelNames = HttpOptions.ReadList(configuration, "served-model-name") ?? [],
            Revision = NullIfEmpty(configuration["revision"]) ?? "main",
            BuildCache = NullIfEmpty(configuration["build-cache"]),
            MaxModelLength = maxModelLength,
            GpuMemoryUtilization = utilization,
            ChatTemplate = configuration["chat-template"],
            DType = ReadDType(configuration["dtype"]),
            Scheduler = new SchedulerOptions
            {
                MaxNumSeqs = ReadInt(configuration, "max-num-seqs", defaults.MaxNumSeqs, 1),
                MaxNumBatchedTokens = ReadInt(configuration, "max-num-batched-tokens", defaults.MaxNumBatchedTokens, 1),
                BlockSize = ReadInt(configuration, "block-size", defaults.BlockSize, 1),
                MaxQueuedRequests = ReadInt(configuration, "max-queued-requests", defaults.MaxQueuedRequests, 1),
                MaxQueuedTokens = ReadInt(configuration, "max-queued-tokens", (int)Math.Min(int.MaxValue, defaults.MaxQueuedTokens), 1),
                MaxConsecutiveStepFailures = ReadInt(configuration, "max-consecutive-step-failures", defaults.MaxConsecutiveStepFailures, 1),
                FaultCooldown = TimeSpan.FromSeconds(ReadSeconds(configuration, "fault-cooldown", defaults.FaultCooldown.TotalSeconds)),
                KvCacheMemory = ReadSize(configuration, "kv-cache-memory", defaults.KvCacheMemory),
                EnablePrefixCaching = ReadBool(configuration, "enable-prefix-caching", fallback: true),
            },
            Session = new OnnxSessionOptions
            {
                IntraOpThreads = ReadInt(configuration, "threads", 0, 0),
                Spinning = ReadSpinning(configuration["onnx-spinning"]),
                Device = NullIfEmpty(configuration["device"]) ?? "auto",
                CudaGraphs = ReadBool(configuration, "cuda-graphs", fallback: true),
                RewriteGraph = ReadBool(configuration, "onnx-graph-rewrite", fallback: true),
                AttentionDevices = ReadAttentionDevices(configuration),
            },
            Limits = new ServingLimits
            {
                MaxRequestTimeout = TimeSpan.FromSeconds(ReadSeconds(configuration, "max-request-timeout", ServingLimits.DefaultMaxRequestTimeout.TotalSeconds)),
                MaxRequestBodySize = (long)ReadSize(configuration, "max-request-body-size", ServingLimits.DefaultMaxRequestBodySize),
            },
            Grpc = ReadGrpc(configuration),
            LogFormat = ReadLogFormat(configuration["log-format"]),
            LogRequests = ReadBool(configuration, "log-requests"),
            ShutdownTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "shutdown-timeout", 30, 0)),
            EngineStallTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "engine-stall-timeout", 60, 1)),
            MaxConnections = string.IsNullOrEmpty(configuration["max-connections"]) ? null : ReadInt(configuration, "max-connections", 0, 1),
            KeepAliveTimeout = TimeSpan.FromSeconds(ReadSeconds(configuration, "keep-alive-timeout", Http.ConnectionLimits.DefaultKeepAliveTimeout.TotalSeconds)),
            MetricsRequireKey = ReadBool(configuration, "metrics-require-key"),

            LivenessStallTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "liveness-stall-timeout", 300, 1)),
        };
    }

    // true and false are what --onnx-spinning took before it had three values.
    private static OnnxSpinning ReadSpinning(string? text) => text?.ToLowerInvariant() switch
    {
        null or "" or "never" or "false" => OnnxSpinning.Never,
        "step" => OnnxSpinning.Step,
        "always" or "true" => OnnxSpinning.Always,
        _ => throw new FormatException($"--onnx-spinning must be never, step or always, not '{text}'"),
    };

    private static string ReadDType(string? text) =>
        string.IsNullOrEmpty(text) ? "auto"
        : text is "auto" or "fp32" or "fp16" or "bf16" or "int4" ? text
        : throw new FormatException($"--dtype must be auto, fp32, fp16, bf16 or int4, not '{text}'");

    private static double ReadSeconds(IConfiguration configuration, string key, double fallback)
    {
        var text = configuration[key];
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || value <= 0 || value > ServingLimits.LongestTimeoutSeconds)
        {
            throw new FormatException($"--{key} must be a number of seconds in (0, {ServingLimits.LongestTimeoutSeconds}], not '{text}'");
        }

        return value;
    }


    private static GrpcServerOptions ReadGrpc(IConfiguration configuration)
    {
        int? port = null;
        var text = configuration["grpc-port"];
        if (!string.IsNullOrEmpty(text))
        {
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value is < 0 or > 65535)
            {
                throw new FormatException($"--grpc-port must be a port number in [0, 65535] (0 picks a free one), not '{text}'");
            }

            port = value;
        }

        var certificate = configuration["grpc-tls-certificate"];
        var key = configuration["grpc-tls-key"];
        if (!string.IsNullOrEmpty(key) && string.IsNullOrEmpty(certificate))
        {
            throw new FormatException("--grpc-tls-key needs --grpc-tls-certificate (the PEM certificate of that key)");
        }

        if (port is null && (!string.IsNullOrEmpty(certificate) || !string.IsNullOrEmpty(configuration["grpc-host"])))
        {
            throw new FormatException("--grpc-host and --grpc-tls-certificate need --grpc-port (the gRPC listener is off without it)");
        }

        return new GrpcServerOptions
        {
            Port = port,
            Host = NullIfEmpty(configuration["grpc-host"]),
            TlsCertificate = NullIfEmpty(certificate),
            TlsKey = NullIfEmpty(key),
            MaxBufferedChunks = ReadInt(configuration, "grpc-max-buffered-chunks", GrpcServerOptions.DefaultMaxBufferedChunks, 1),
            MaxMessageSize = ReadInt(configuration, "grpc-max-message-size", GrpcServerOptions.DefaultMaxMessageSize, 1),
        };
    }

    private static string? NullIfEmpty(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    /// <summary>
    /// <c>--attention-device cpu|cuda:N[,...]</c>, repeatable (the command line joins the repeats with commas): the memory devices of attention offloading (ADR 0005), in order; empty runs fused.
    /// </summary>
    private static string[] ReadAttentionDevices(IConfiguration configuration)
    {
        var devices = new List<string>();
        var section = configuration.GetSection("attention-device");
        IEnumerable<string?> values = section.Value is { } single ? [single] : section.GetChildren().OrderBy(static c => int.TryParse(c.Key, out var i) ? i : int.MaxValue).Select(static c => c.Value);
        foreach (var value in values)
        {
            foreach (var part in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var device = part.ToLowerInvariant();
                try
                {
                    SplitDecoderModel.ValidateAttentionDevice(device);
                }
                catch (ExecutionProviderException ex)
                {
                    throw new FormatException(ex.Message, ex);
                }

                devices.Add(device);
            }
        }

        return [.. devices];
    }

    private static LogFormat ReadLogFormat(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "text" => LogFormat.Text,
        "json" => LogFormat.Json,
        _ => throw new FormatException($"--log-format must be 'text' or 'json', not '{text}'"),
    };

    private static bool ReadBool(IConfiguration configuration, string key, bool fallback = false)
    {
        var text = configuration[key];
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        return bool.TryParse(text, out var value) ? value : throw new FormatException($"--{key} must be true or false, not '{text}'");
    }

    private static int ReadInt(IConfiguration configuration, string key, int fallback, int minimum)
    {
        var text = configuration[key];
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < minimum)
        {
            throw new FormatException($"--{key} must be an integer of at least {minimum}, not '{text}'");
        }

        return value;
    }

    /// <summary>Bytes (with optional k/m/g suffix, powers of 1024) or a fraction in (0, 1].</summary>
    internal static double ReadSize(IConfiguration configuration, string key, double fallback)
    {
        var text = configuration[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return SizeText.TryParse(text, out var value)
            ? value
            : throw new FormatException($"--{key} must be a byte count (e.g. 512m, 2g) or a fraction in (0, 1], not '{text}'");
    }

    private static double? ReadFraction(IConfiguration configuration, string key)
    {
        var text = configuration[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value is > 0 and <= 1
            ? value
            : throw new FormatException($"--{key} must be a fraction in (0, 1], not '{text}'");
    }
}
