// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Graph;
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The one place ONNX Runtime sessions are made: session options (threads, spinning, graph optimization level,
/// profiling), the execution provider of a <see cref="ComputeDevice"/> (CUDA's provider options, graph capture), the
/// load-time graph rewrite (ADR 0004) and the device's memory. Every decoder model gets its sessions here; one factory
/// opens sessions on any number of devices of the process (a split model's segments on one, attention on others).
/// </summary>
internal sealed class OnnxSessionFactory
{
    /// <summary>Creates a factory for sessions made as <paramref name="options"/> says; <c>--device</c> is parsed here, once.</summary>
    /// <exception cref="ExecutionProviderException"><see cref="OnnxSessionOptions.Device"/> is malformed.</exception>
    public OnnxSessionFactory(OnnxSessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Request = DeviceRequest.Parse(options.Device);
    }

    /// <summary>The options sessions are made with.</summary>
    public OnnxSessionOptions Options { get; }

    /// <summary>The device <c>--device</c> asks for.</summary>
    public DeviceRequest Request { get; }

    /// <summary>The device's free memory now, or null for the host (the engine then uses the process's available memory).</summary>
    public static long? FreeMemory(ComputeDevice device) => device.IsCuda ? CudaRuntime.MemoryInfo(device.Ordinal).Free : null;

    /// <summary>The device's total memory, or null for the host.</summary>
    public static long? TotalMemory(ComputeDevice device) => device.IsCuda ? CudaRuntime.MemoryInfo(device.Ordinal).Total : null;

    /// <summary>
    /// Appends the execution provider of <paramref name="request"/> to <paramref name="sessionOptions"/>; returns the device
    /// used and, for an <c>auto</c> fallback to the CPU, why.
    /// </summary>
    /// <exception cref="ExecutionProviderException">A CUDA device was insisted on and its provider cannot be used.</exception>
    /// <remarks>
    /// With <paramref name="cudaGraphs"/>, the CUDA provider is appended with ONNX Runtime's graph capture enabled.
    /// <paramref name="requested"/> is the flag's text, for the message (default: the device's name).
    /// </remarks>
    internal static (ComputeDevice Device, string? Note) AppendProvider(SessionOptions sessionOptions, DeviceRequest request, bool cudaGraphs = false, string? requested = null, IntPtr stream = default)
    {
        if (!request.Cuda)
        {
            return (ComputeDevice.Cpu, null);
        }

        // On a machine without CUDA, ONNX Runtime would also print the load failure itself; auto says it once, in its own words.
        var environment = OrtEnv.Instance();
        var level = environment.EnvLogLevel;
        if (request.Auto)
        {
            environment.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
        }

        try
        {
            if (cudaGraphs || stream != IntPtr.Zero)
            {
                using var provider = new OrtCUDAProviderOptions();
                var settings = new Dictionary<string, string> { ["device_id"] = request.Device.Ordinal.ToString(CultureInfo.InvariantCulture) };
                if (cudaGraphs)
                {
                    settings["enable_cuda_graph"] = "1";
                }

                if (stream != IntPtr.Zero)
                {
                    // The session's kernels and copies go on the caller's stream (one stream for a split model's step).
                    settings["has_user_compute_stream"] = "1";
                    settings["user_compute_stream"] = ((ulong)stream).ToString(CultureInfo.InvariantCulture);
                }

                provider.UpdateOptions(settings);
                sessionOptions.AppendExecutionProvider_CUDA(provider);
            }
            else
            {
                sessionOptions.AppendExecutionProvider_CUDA(request.Device.Ordinal);
            }

            return (request.Device, null);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            if (request.Auto)
            {
                return (ComputeDevice.Cpu, $"the CUDA execution provider did not load ({FirstLine(ex.Message)})");
            }

            throw new ExecutionProviderException($"--device {requested ?? request.Device.ToString()}: the CUDA execution provider cannot be used ({FirstLine(ex.Message)})", ex);
        }
        finally
        {
            environment.EnvLogLevel = level;
        }
    }

    /// <summary>
    /// Opens <paramref name="package"/>'s graph on the device <c>--device</c> asks for (<c>auto</c> falls back to the CPU).
    /// </summary>
    /// <exception cref="ModelPackageException">ONNX Runtime cannot load the graph.</exception>
    /// <exception cref="ExecutionProviderException">The device cannot be used.</exception>
    /// <remarks>
    /// With <paramref name="cudaGraphs"/>, CUDA graph capture is enabled (paged graphs only: ADR 0003).
    /// Unless <see cref="OnnxSessionOptions.RewriteGraph"/> is off or the graph is paged, the graph is first rewritten by
    /// <see cref="GraphRewriter"/> (ADR 0004); when a rewrite applies, the session loads the rewritten bytes and reads any
    /// external data from the package's folder, and <c>GraphNote</c> says what changed.
    /// </remarks>
    public (InferenceSession Session, ComputeDevice Device, string? DeviceNote, string? GraphNote) OpenModel(ModelPackage package, bool cudaGraphs = false)
    {
        ArgumentNullException.ThrowIfNull(package);
        var rewrite = Options.RewriteGraph && package.GraphKind != PagedDecoderModel.GraphKind;
        return Open(package.GraphPath, Request, cudaGraphs, rewrite, Options.Device);
    }

    /// <summary>Opens the graph file <paramref name="graphPath"/> on exactly <paramref name="device"/>, as it is (no rewrite).</summary>
    /// <exception cref="ModelPackageException">ONNX Runtime cannot load the graph.</exception>
    /// <exception cref="ExecutionProviderException">The device cannot be used.</exception>
    public InferenceSession Open(string graphPath, ComputeDevice device, IntPtr stream = default)
        => Open(graphPath, new DeviceRequest(Auto: false, device), cudaGraphs: false, rewrite: false, requested: null, stream).Session;

    /// <summary>Whether <paramref name="ex"/> is ONNX Runtime refusing CUDA graph capture for a graph (a host/device copy node in it).</summary>
    internal static bool IsCaptureRefusal(Exception ex) => ex.Message.Contains("graph capture", StringComparison.OrdinalIgnoreCase);

    /// <summary>The first line of an ONNX Runtime message (they carry stack-like detail after it).</summary>
    internal static string FirstLine(string text)
    {
        var newline = text.IndexOf('\n', StringComparison.Ordinal);
        return (newline < 0 ? text : text[..newline]).Trim();
    }

    private (InferenceSession Session, ComputeDevice Device, string? DeviceNote, string? GraphNote) Open(string path, DeviceRequest request, bool cudaGraphs, bool rewrite, string? requested, IntPtr stream = default)
    {
        using var sessionOptions = CreateSessionOptions();
        var (device, deviceNote) = AppendProvider(sessionOptions, request, cudaGraphs, requested, stream);
        try
        {
            var rewritten = rewrite ? GraphRewriter.Rewrite(path) : null;
            if (rewritten is null)
            {
                return (new InferenceSession(path, sessionOptions), device, deviceNote, null);
            }

            // External data paths in the graph are relative to the graph's folder, which bytes do not have.
            sessionOptions.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetDirectoryName(Path.GetFullPath(path))!);
            return (new InferenceSession(rewritten.Model, sessionOptions), device, deviceNote, rewritten.Summary);
        }
        catch (OnnxRuntimeException ex)
        {
            var hint = !device.IsCuda && ex.Message.Contains("PagedAttention", StringComparison.Ordinal)
                ? "; this graph is built for CUDA (com.microsoft.PagedAttention has no CPU kernel): serve it with --device cuda"
                : string.Empty;
            throw new ModelPackageException(path, $"ONNX Runtime cannot load the graph ({FirstLine(ex.Message)}){hint}", ex);
        }
    }

    private SessionOptions CreateSessionOptions()
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = Options.GraphOptimization switch
            {
                "none" => GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
            IntraOpNumThreads = Options.IntraOpThreads,
        };

        // Spinning threads take the cores the HTTP and streaming threads of the same process need (OnnxSpinning.Never, the
        // default); Step spins only while a step runs, so that no parallel operator waits for a sleeping thread to wake.
        sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", Options.Spinning == OnnxSpinning.Never ? "0" : "1");
        if (Options.Spinning == OnnxSpinning.Step)
        {
            sessionOptions.AddSessionConfigEntry("session.force_spinning_stop", "1");
        }

        if (Options.ProfilePrefix is { } prefix)
        {
            // The prefix is read when profiling is switched on, so it is set first.
            sessionOptions.ProfileOutputPathPrefix = prefix;
            sessionOptions.EnableProfiling = true;
        }

        return sessionOptions;
    }
}
