// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Hosting.CommandLine;
using InferenceServer.Http;
using InferenceServer.Observability;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Grpc;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>
/// Binds <see cref="ServerOptions"/> and <see cref="HttpOptions"/> from configuration (the command line as <see cref="ServerCommandLine"/> passes it on,
/// environment variables, appsettings.json), once at start. Each key it reads is a flag of <see cref="ServerFlags"/>;
/// a value that is not of its flag's kind, or out of its range, is a <see cref="FormatException"/> whose message names
/// the flag and quotes the value. Rules between flags are <see cref="ServerOptionsValidator"/>'s.
/// </summary>
internal static class ServerOptionsBinder
{
    /// <summary>
    /// Reads every option from <paramref name="configuration"/> (absent ones take their defaults); throws
    /// <see cref="FormatException"/> naming the option when a value is not of its kind or out of its range. Rules
    /// between options are <see cref="ServerOptionsValidator"/>'s.
    /// </summary>
    public static ServerOptions Bind(IConfiguration configuration)
    {
        var defaults = new SchedulerOptions();
        var utilization = ReadFraction(configuration, "gpu-memory-utilization");

        int? maxModelLength = string.IsNullOrEmpty(Text(configuration, "max-model-len")) ? null : ReadInt(configuration, "max-model-len", 0, 1);
        var maxNumSeqs = ReadInt(configuration, "max-num-seqs", defaults.MaxNumSeqs, 1);
        // --kv-cache-memory 20g,64g: one size per attention device (else one size, read below).
        var poolMemory = ReadSizeList(configuration, "kv-cache-memory");
        var deterministic = ReadBool(configuration, "deterministic");
        return new ServerOptions
        {
            Model = NullIfEmpty(Text(configuration, "model")),
            ServedModelNames = ReadList(configuration, Flag("served-model-name")) ?? [],
            Revision = NullIfEmpty(Text(configuration, "revision")) ?? "main",
            BuildCache = NullIfEmpty(Text(configuration, "build-cache")),
            MaxModelLength = maxModelLength,
            GpuMemoryUtilization = utilization,
            ChatTemplate = Text(configuration, "chat-template"),
            DType = ReadDType(Text(configuration, "dtype")),
            Scheduler = new SchedulerOptions
            {
                MaxNumSeqs = maxNumSeqs,
                MaxNumBatchedTokens = ReadInt(configuration, "max-num-batched-tokens", defaults.MaxNumBatchedTokens, 1),
                BlockSize = ReadInt(configuration, "block-size", defaults.BlockSize, 1),
                MaxQueuedRequests = ReadInt(configuration, "max-queued-requests", defaults.MaxQueuedRequests, 1),
                MaxQueuedTokens = ReadInt(configuration, "max-queued-tokens", (int)Math.Min(int.MaxValue, defaults.MaxQueuedTokens), 1),
                MaxConsecutiveStepFailures = ReadInt(configuration, "max-consecutive-step-failures", defaults.MaxConsecutiveStepFailures, 1),
                FaultCooldown = TimeSpan.FromSeconds(ReadSeconds(configuration, "fault-cooldown", defaults.FaultCooldown.TotalSeconds)),
                KvCacheMemory = poolMemory is null ? ReadSize(configuration, "kv-cache-memory", defaults.KvCacheMemory) : defaults.KvCacheMemory,
                KvCachePoolMemory = poolMemory,
                HostKvCacheMemory = Text(configuration, "host-kv-cache-memory")?.Trim() == "0" ? 0 : ReadSize(configuration, "host-kv-cache-memory", defaults.HostKvCacheMemory),
                // A cached prefix was computed in another request's chunks: --deterministic recomputes every prompt.
                EnablePrefixCaching = !deterministic && ReadBool(configuration, "enable-prefix-caching", fallback: true),
                // --deterministic: the budget cuts prompts where the runner's batch-invariant pieces end.
                PrefillChunkAlignment = deterministic ? OnnxSessionOptions.DeterministicChunkTokens : 0,
                WarmUp = ReadAutoBool(configuration, "warmup"),
            },
            KvCacheMemoryGiven = !string.IsNullOrEmpty(Text(configuration, "kv-cache-memory")),
            Session = new OnnxSessionOptions
            {
                IntraOpThreads = ReadInt(configuration, "threads", 0, 0),
                Spinning = ReadSpinning(Text(configuration, "onnx-spinning")),
                Device = NullIfEmpty(Text(configuration, "device")) ?? "auto",
                CudaGraphs = ReadBool(configuration, "cuda-graphs", fallback: true),
                CudaGraphMaxBatch = Math.Min(maxNumSeqs, ReadInt(configuration, "cuda-graph-max-batch", 256, 1)),
                Deterministic = deterministic,
                RewriteGraph = ReadBool(configuration, "onnx-graph-rewrite", fallback: true),
                AttentionDevices = ReadAttentionDevices(configuration),
                AttentionOverlap = ReadOverlap(Text(configuration, "attention-overlap")),
                PrefillAttentionOnCompute = ReadPrefillAttention(Text(configuration, "prefill-attention")),
                PrefillAttentionMinTokens = ReadInt(configuration, "prefill-attention-min-tokens", OnnxSessionOptions.DefaultPrefillAttentionMinTokens, 1),
                HostKvElementType = ReadKvCacheDtype(Text(configuration, "kv-cache-dtype")),
                SplitOneStream = ReadAutoBool(configuration, "split-one-stream"),
            },
            Limits = new ServingLimits
            {
                MaxRequestTimeout = TimeSpan.FromSeconds(ReadSeconds(configuration, "max-request-timeout", ServingLimits.DefaultMaxRequestTimeout.TotalSeconds)),
                MaxRequestBodySize = (long)ReadSize(configuration, "max-request-body-size", ServingLimits.DefaultMaxRequestBodySize),
            },
            Grpc = ReadGrpc(configuration),
            LogFormat = ReadLogFormat(Text(configuration, "log-format")),
            LogRequests = ReadBool(configuration, "log-requests"),
            ShutdownTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "shutdown-timeout", 30, 0)),
            EngineStallTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "engine-stall-timeout", 60, 1)),
            MaxConnections = string.IsNullOrEmpty(Text(configuration, "max-connections")) ? null : ReadInt(configuration, "max-connections", 0, 1),
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

    // vLLM's spellings; its fp8 values name kernels this server does not wire (ADR 0005).
    private static KvElementType? ReadKvCacheDtype(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => null,
        "float32" or "fp32" or "float" => KvElementType.Float32,
        "float16" or "fp16" or "half" => KvElementType.Float16,
        "bfloat16" or "bf16" => KvElementType.BFloat16,
        { } fp8 when fp8.StartsWith("fp8", StringComparison.Ordinal) => throw new FormatException($"--kv-cache-dtype {text} is not supported: the host pools store float32, float16 or bfloat16 (auto keeps the model's)"),
        _ => throw new FormatException($"--kv-cache-dtype must be auto, float32, float16 or bfloat16, not '{text}'"),
    };

    private static AttentionOverlap ReadOverlap(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => AttentionOverlap.Auto,
        "on" or "true" => AttentionOverlap.On,
        "off" or "false" => AttentionOverlap.Off,
        _ => throw new FormatException($"--attention-overlap must be auto, on or off, not '{text}'"),
    };

    private static bool? ReadPrefillAttention(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => null,
        "host" => false,
        "compute" => true,
        _ => throw new FormatException($"--prefill-attention must be auto, host or compute, not '{text}'"),
    };

    private static string ReadDType(string? text) =>
        string.IsNullOrEmpty(text) ? "auto"
        : text is "auto" or "fp32" or "fp16" or "bf16" or "int4" ? text
        : throw new FormatException($"--dtype must be auto, fp32, fp16, bf16 or int4, not '{text}'");

    private static double ReadSeconds(IConfiguration configuration, string key, double fallback)
    {
        var text = Text(configuration, key);
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
        var text = Text(configuration, "grpc-port");
        if (!string.IsNullOrEmpty(text))
        {
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value is < 0 or > 65535)
            {
                throw new FormatException($"--grpc-port must be a port number in [0, 65535] (0 picks a free one), not '{text}'");
            }

            port = value;
        }

        var certificate = Text(configuration, "grpc-tls-certificate");
        var key = Text(configuration, "grpc-tls-key");
        return new GrpcServerOptions
        {
            Port = port,
            Host = NullIfEmpty(Text(configuration, "grpc-host")),
            TlsCertificate = NullIfEmpty(certificate),
            TlsKey = NullIfEmpty(key),
            MaxBufferedChunks = ReadInt(configuration, "grpc-max-buffered-chunks", GrpcServerOptions.DefaultMaxBufferedChunks, 1),
            MaxMessageSize = ReadInt(configuration, "grpc-max-message-size", GrpcServerOptions.DefaultMaxMessageSize, 1),
        };
    }

    private static string? NullIfEmpty(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    /// <summary>
    /// The configuration value of the flag <paramref name="key"/>, which must be a flag of <see cref="ServerFlags"/>
    /// (so that an option read here is always one the command line takes, <c>--help</c> shows and README lists).
    /// </summary>
    private static string? Text(IConfiguration configuration, string key) => configuration[Flag(key)];

    private static string Flag(string key) => ServerFlags.Find(key)?.Name == key
        ? key
        : throw new InvalidOperationException($"'{key}' is read as an option but is not in ServerFlags' table");

    /// <summary>
    /// <c>--attention-device cpu|cuda:N[,...]</c>, repeatable (the command line joins the repeats with commas): the memory devices of attention offloading (ADR 0005), in order; empty runs fused.
    /// </summary>
    private static string[] ReadAttentionDevices(IConfiguration configuration)
    {
        var devices = new List<string>();
        var section = configuration.GetSection(Flag("attention-device"));
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
        var text = Text(configuration, key);
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }

        return bool.TryParse(text, out var value) ? value : throw new FormatException($"--{key} must be true or false, not '{text}'");
    }

    /// <summary>A flag whose default is <c>auto</c> (null): true, false, or auto.</summary>
    private static bool? ReadAutoBool(IConfiguration configuration, string key)
    {
        var text = Text(configuration, key);
        if (string.IsNullOrEmpty(text) || text.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        return bool.TryParse(text, out var value) ? value : throw new FormatException($"--{key} must be true, false or auto, not '{text}'");
    }

    private static int ReadInt(IConfiguration configuration, string key, int fallback, int minimum)
    {
        var text = Text(configuration, key);
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
        var text = Text(configuration, key);
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        return SizeText.TryParse(text, out var value)
            ? value
            : throw new FormatException($"--{key} must be a byte count (e.g. 512m, 2g) or a fraction in (0, 1], not '{text}'");
    }

    /// <summary>A comma-separated list of sizes (<c>20g,64g</c>, one per attention device), or null when the value has no comma.</summary>
    internal static IReadOnlyList<double>? ReadSizeList(IConfiguration configuration, string key)
    {
        var text = Text(configuration, key);
        if (text is null || !text.Contains(',', StringComparison.Ordinal))
        {
            return null;
        }

        var sizes = new List<double>();
        foreach (var part in text.Split(','))
        {
            sizes.Add(SizeText.TryParse(part.Trim(), out var value)
                ? value
                : throw new FormatException($"--{key} must be a byte count (e.g. 512m, 2g) or a fraction in (0, 1], or one such per --attention-device separated by commas, not '{text}'"));
        }

        return sizes;
    }

    private static double? ReadFraction(IConfiguration configuration, string key)
    {
        var text = Text(configuration, key);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value is > 0 and <= 1
            ? value
            : throw new FormatException($"--{key} must be a fraction in (0, 1], not '{text}'");
    }

    /// <summary>
    /// Reads a list option: a JSON array (<c>["https://a", "https://b"]</c>, vLLM's form) or a comma-separated list;
    /// null when the option is absent.
    /// </summary>
    private static IReadOnlyList<string>? ReadList(IConfiguration configuration, string key)
    {
        var text = Text(configuration, key)?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            // Repeated options and appsettings arrays arrive as key:0, key:1, ...
            var children = configuration.GetSection(Flag(key)).GetChildren().Select(c => c.Value).OfType<string>().Where(v => v.Length > 0).ToList();
            return children.Count > 0 ? children : null;
        }

        if (text.StartsWith('['))
        {
            try
            {
                var items = System.Text.Json.JsonSerializer.Deserialize<string[]>(text);
                if (items is { Length: > 0 } && items.All(i => !string.IsNullOrWhiteSpace(i)))
                {
                    return items;
                }
            }
            catch (System.Text.Json.JsonException)
            {
            }

            throw new FormatException($"--{key} must be a JSON array of non-empty strings or a comma-separated list, not '{text}'");
        }

        return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>
    /// Reads the HTTP options (<c>--api-key</c>, <c>--allowed-origins</c>, <c>--allowed-methods</c>,
    /// <c>--allowed-headers</c>, <c>--allow-credentials</c>); throws <see cref="FormatException"/> naming the option on a bad value.
    /// </summary>
    public static HttpOptions BindHttp(IConfiguration configuration)
    {
        var defaults = new HttpOptions();
        var keys = ReadList(configuration, "api-key") ?? [];
        return new HttpOptions
        {
            ApiKeys = keys,
            AllowedOrigins = ReadList(configuration, "allowed-origins") ?? defaults.AllowedOrigins,
            AllowedMethods = ReadList(configuration, "allowed-methods") ?? defaults.AllowedMethods,
            AllowedHeaders = ReadList(configuration, "allowed-headers") ?? defaults.AllowedHeaders,
            AllowCredentials = Text(configuration, "allow-credentials") is { } credentials && ReadCredentials(credentials),
        };
    }

    private static bool ReadCredentials(string text) => bool.TryParse(text, out var value)
        ? value
        : throw new FormatException($"--allow-credentials must be true or false, not '{text}'");
}
