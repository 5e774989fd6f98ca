// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text.Json;
using InferenceServer.Builder;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.GpuTests;

/// <summary>
/// Fixture checkpoints (tests/fixtures, or the folder in <c>INFERENCE_SERVER_FIXTURES</c> on the GPU machine), each built
/// once per run and dtype into a scratch folder, and whether this machine has a CUDA device.
/// </summary>
internal static class GpuFixtures
{
    private static readonly Dictionary<string, string> Built = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();
    private static readonly Lazy<string?> NoCuda = new(ProbeCuda);

    /// <summary>Null when the CUDA execution provider loads on device 0; else why not (the skip reason).</summary>
    public static string? CudaUnavailableReason => NoCuda.Value;

    /// <summary>
    /// Why an opt-in probe does not run, or null: probes run only with <c>INFERENCE_SERVER_GPU_PROBES=1</c>, in a process of
    /// their own (bench/gpu/README.md), since a kernel that fails to launch may end the process's CUDA context.
    /// </summary>
    public static string? ProbesDisabledReason => Environment.GetEnvironmentVariable("INFERENCE_SERVER_GPU_PROBES") == "1"
        ? null
        : "a probe: set INFERENCE_SERVER_GPU_PROBES=1 and run it apart from the suite (a failed kernel launch may end the process's CUDA context; bench/gpu/README.md)";

    public static string FixturesRoot { get; } = FindFixtures();

    private static string Scratch { get; } = CreateScratch();

    public static string Fixture(string name) => Path.Combine(FixturesRoot, name);

    /// <summary>
    /// Builds fixture <paramref name="name"/> as a paged CUDA graph in <paramref name="dtype"/>, with or without the
    /// <c>attention_metadata</c> input, and an MLA checkpoint's <paramref name="mlaAttention"/> form (once each), and returns its folder.
    /// </summary>
    public static string BuildPaged(string name, string dtype, bool attentionMetadata = true, string mlaAttention = "gather")
    {
        lock (Gate)
        {
            var key = name + "-" + dtype + (attentionMetadata ? string.Empty : "-no-metadata") + (mlaAttention == "gather" ? string.Empty : "-" + mlaAttention);
            if (!Built.TryGetValue(key, out var folder))
            {
                folder = Path.Combine(Scratch, key);
                Directory.CreateDirectory(folder);
                ModelBuilder.Build(new BuildOptions { CheckpointDirectory = Fixture(name), OutputDirectory = folder, DType = dtype, Device = "cuda", AttentionMetadata = attentionMetadata, MlaAttention = mlaAttention });
                Built.Add(key, folder);
            }

            return folder;
        }
    }

    /// <summary>
    /// Builds fixture <paramref name="name"/> in <paramref name="dtype"/> for CUDA with the split form (ADR 0005) beside
    /// the fused paged graph (once) and returns its folder: opened without attention devices it is the fused model.
    /// </summary>
    public static string BuildSplit(string name, string dtype)
    {
        lock (Gate)
        {
            var key = name + "-" + dtype + "-split";
            if (!Built.TryGetValue(key, out var folder))
            {
                folder = Path.Combine(Scratch, key);
                Directory.CreateDirectory(folder);
                ModelBuilder.Build(new BuildOptions { CheckpointDirectory = Fixture(name), OutputDirectory = folder, DType = dtype, Device = "cuda", Split = true });
                Built.Add(key, folder);
            }

            return folder;
        }
    }

    /// <summary>The fixture's reference cases: prompt, greedy continuation, per-step top-2 margin, first-step logits.</summary>
    public static List<ReferenceCase> References(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture(name), "reference.json")));
        var cases = new List<ReferenceCase>();
        foreach (var item in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new ReferenceCase(
                [.. item.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32())],
                [.. item.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32())],
                [.. item.GetProperty("top2_margin").EnumerateArray().Select(e => e.GetSingle())],
                [.. item.GetProperty("first_step_logits").EnumerateArray().Select(e => e.GetSingle())]));
        }

        return cases;
    }

    private static string? ProbeCuda()
    {
        using var options = new SessionOptions();
        try
        {
            var (device, note) = OnnxSessionFactory.AppendProvider(options, DeviceRequest.Parse("auto"));
            return device.IsCuda ? null : $"no CUDA device: {note}";
        }
        catch (ExecutionProviderException ex)
        {
            return $"no CUDA device: {ex.Message}";
        }
    }

    private static string FindFixtures()
    {
        if (Environment.GetEnvironmentVariable("INFERENCE_SERVER_FIXTURES") is { Length: > 0 } configured)
        {
            return configured;
        }

        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/fixtures not found above the test assembly; set INFERENCE_SERVER_FIXTURES");
    }

    private static string CreateScratch()
    {
        var path = Path.Combine(Path.GetTempPath(), "inference-server-gpu-tests", Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(path);
        return path;
    }
}
