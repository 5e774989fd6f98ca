// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Benchmarks;

/// <summary>Where the repository's files are, found from the working directory or the assembly upwards.</summary>
internal static class Paths
{
    /// <summary>models/tiny-pycoder, the default model.</summary>
    public static string DefaultModel()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var candidate = Path.Combine(directory.FullName, "models", "tiny-pycoder");
                if (File.Exists(Path.Combine(candidate, "model.onnx")))
                {
                    return candidate;
                }
            }
        }

        throw new DirectoryNotFoundException("models/tiny-pycoder not found above the working directory or the benchmark's folder");
    }
}
