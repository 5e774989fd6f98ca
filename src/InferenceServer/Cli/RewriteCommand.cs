// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Graph;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Cli;

/// <summary>
/// The <c>rewrite</c> command: <c>InferenceServer rewrite &lt;model folder&gt; --out &lt;folder&gt;</c> writes the model folder
/// with its graph rewritten as the server rewrites it at load (ADR 0004), so that the graph the server runs can be
/// inspected or run by other runtimes (bench/run-cpu.sh gives it to onnxruntime-genai with <c>GENAI_GRAPH=rewritten</c>).
/// The other files of the folder (configuration, tokenizer, external weights) are copied beside it.
/// </summary>
internal static class RewriteCommand
{
    /// <summary>The usage line.</summary>
    public const string Usage = "usage: InferenceServer rewrite <model folder> --out <folder>";

    /// <summary>Runs the command on the console; returns the exit code (0 written, 1 unreadable model, 2 bad arguments).</summary>
    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command writing messages to <paramref name="output"/> and <paramref name="error"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args is not ["rewrite", var source, "--out", var target] || string.IsNullOrWhiteSpace(target))
        {
            error.WriteLine(Usage);
            return 2;
        }

        if (Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar))
        {
            error.WriteLine("rewrite: --out must be another folder than the model's (the original graph is kept)");
            return 2;
        }

        try
        {
            var package = ModelPackage.Load(source);
            var rewrite = GraphRewriter.Rewrite(package.GraphPath);
            Directory.CreateDirectory(target);
            foreach (var file in Directory.GetFiles(package.Directory))
            {
                if (!string.Equals(Path.GetFullPath(file), Path.GetFullPath(package.GraphPath), StringComparison.Ordinal))
                {
                    File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
                }
            }

            var graph = Path.Combine(target, Path.GetFileName(package.GraphPath));
            if (rewrite is null)
            {
                File.Copy(package.GraphPath, graph, overwrite: true);
                output.WriteLine($"{graph}: no rewrite applies; the graph is copied as it is");
            }
            else
            {
                File.WriteAllBytes(graph, rewrite.Model);
                output.WriteLine($"{graph}: {rewrite.Summary}");
            }

            return 0;
        }
        catch (ModelPackageException ex)
        {
            error.WriteLine($"rewrite: {ex.Message}");
            return 1;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"rewrite: {ex.Message}");
            return 1;
        }
    }
}
