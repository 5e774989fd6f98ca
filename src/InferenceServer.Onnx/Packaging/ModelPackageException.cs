// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// A model folder that cannot be served. The message is one line that names the offending file and the problem,
/// suitable for printing as-is at startup.
/// </summary>
public sealed class ModelPackageException : Exception
{
    /// <summary>Creates the exception for <paramref name="file"/> with a description of <paramref name="problem"/>.</summary>
    public ModelPackageException(string file, string problem, Exception? inner = null)
        : base($"{file}: {problem}", inner)
    {
        File = file;
        Problem = problem;
    }

    /// <summary>The file (or folder) at fault.</summary>
    public string File { get; }

    /// <summary>What is wrong with it.</summary>
    internal string Problem { get; }
}
