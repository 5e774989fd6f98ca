// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Builder.Tests;

/// <summary>Fixture paths, and each fixture checkpoint built once per test run into a temporary folder.</summary>
internal static class BuiltModels
{
    private static readonly Dictionary<string, string> Built = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();

    public static string Root { get; } = FindRoot();

    /// <summary>This test process's scratch folder, removed when the process exits.</summary>
    private static string Scratch { get; } = CreateScratch();

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", name);

    public static string TempDirectory(string name)
    {
        var path = Path.Combine(Scratch, name);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Builds fixture <paramref name="name"/> (once per dtype, device and split) and returns the output folder.</summary>
    public static string Get(string name, string dtype = "fp32", string device = "cpu", bool split = false)
    {
        lock (Gate)
        {
            var key = (dtype == "fp32" && device == "cpu" ? name : $"{name}-{dtype}-{device}") + (split ? "-split" : string.Empty);
            if (!Built.TryGetValue(key, out var folder))
            {
                folder = TempDirectory("built-" + key);
                ModelBuilder.Build(new BuildOptions { CheckpointDirectory = Fixture(name), OutputDirectory = folder, DType = dtype, Device = device, Split = split });
                Built.Add(key, folder);
            }

            return folder;
        }
    }

    /// <summary>The fixture's reference cases: prompt, greedy continuation, first-step logits.</summary>
    public static List<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> References(string name) =>
        ReferencesAt(Path.Combine(Fixture(name), "reference.json"));

    /// <summary>The cases of the <c>reference.json</c> at <paramref name="path"/>; first-step logits empty where it has none.</summary>
    public static List<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> ReferencesAt(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var cases = new List<(int[], int[], float[])>();
        foreach (var item in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add((
                item.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                item.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                item.TryGetProperty("first_step_logits", out var logits) ? logits.EnumerateArray().Select(e => e.GetSingle()).ToArray() : []));
        }

        return cases;
    }

    private static string CreateScratch()
    {
        var path = Path.Combine(Path.GetTempPath(), "inference-server-builder-tests", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(path);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(path, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a leftover scratch folder in /tmp is harmless.
            }
        };
        return path;
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "InferenceServer.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("repository root not found");
    }
}
