// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Options;

namespace InferenceServer.Hosting;

/// <summary>
/// The rules between <see cref="ServerOptions"/>' flags, checked once at start after binding (each flag's own kind and
/// range are <see cref="ServerOptionsBinder"/>'s): <c>--gpu-memory-utilization</c> or <c>--kv-cache-memory</c>, not
/// both; <c>--grpc-tls-key</c> only with <c>--grpc-tls-certificate</c>; <c>--grpc-host</c> and
/// <c>--grpc-tls-certificate</c> only with <c>--grpc-port</c>; with <c>--deterministic</c>, a token budget that fits a
/// 512-position prompt piece beside a full batch of decodes; <c>--kv-cache-dtype</c> other than auto only with
/// <c>--attention-device</c> entries that are all <c>cpu</c>, and so <c>--prefill-attention compute</c>. Every message
/// names the flags.
/// </summary>
internal sealed class ServerOptionsValidator : IValidateOptions<ServerOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.GpuMemoryUtilization is not null && options.KvCacheMemoryGiven)
        {
            failures.Add("--gpu-memory-utilization and --kv-cache-memory both size the KV cache; give only one");
        }

        var scheduler = options.Scheduler;
        if (scheduler.PrefillChunkAlignment > 0 && scheduler.MaxNumBatchedTokens < scheduler.PrefillChunkAlignment + scheduler.MaxNumSeqs)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"--deterministic cuts prompts at multiples of {scheduler.PrefillChunkAlignment} positions, so --max-num-batched-tokens ({scheduler.MaxNumBatchedTokens}) must be at least {scheduler.PrefillChunkAlignment} + --max-num-seqs ({scheduler.MaxNumSeqs}) = {scheduler.PrefillChunkAlignment + scheduler.MaxNumSeqs}: room for a prompt's next piece beside a full batch of decodes"));
        }

        // Both flags below act on the host KV pools of cpu attention devices: only when every attention device is cpu.
        var session = options.Session;
        var hostPoolsOnly = session.AttentionDevices.Count > 0 && session.AttentionDevices.All(static d => d.Equals("cpu", StringComparison.OrdinalIgnoreCase));
        if (session.HostKvElementType is { } kvType && !hostPoolsOnly)
        {
            failures.Add($"--kv-cache-dtype {kvType.ToName()} sets the type of the host KV pools of --attention-device cpu: give --attention-device cpu (and only cpu entries), or leave --kv-cache-dtype auto (the fused runners and GPU pools keep the model's own KV type)");
        }

        if (session.PrefillAttentionOnCompute == true && !hostPoolsOnly)
        {
            failures.Add("--prefill-attention compute moves the attention of prompts off the host KV pools of --attention-device cpu: give --attention-device cpu (and only cpu entries), or leave --prefill-attention auto or host (a fused runner or a GPU attention device attends prompts on the GPU already)");
        }

        var grpc = options.Grpc;
        if (grpc.TlsKey is not null && grpc.TlsCertificate is null)
        {
            failures.Add("--grpc-tls-key needs --grpc-tls-certificate (the PEM certificate of that key)");
        }

        if (grpc.Port is null && (grpc.TlsCertificate is not null || grpc.Host is not null))
        {
            failures.Add("--grpc-host and --grpc-tls-certificate need --grpc-port (the gRPC listener is off without it)");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Validates <paramref name="options"/>; throws <see cref="FormatException"/> with the first failure (the startup's one line).</summary>
    public static void ThrowIfInvalid(ServerOptions options)
    {
        var result = new ServerOptionsValidator().Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new FormatException(result.Failures.First());
        }
    }
}
