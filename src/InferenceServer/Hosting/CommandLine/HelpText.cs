// Licensed under the MIT License. See LICENSE in the repository root.
using System.Reflection;
using System.Text;

namespace InferenceServer.Hosting.CommandLine;

/// <summary>The text of <c>--help</c> (from <see cref="ServerFlags"/>) and of <c>--version</c>.</summary>
internal static class HelpText
{
    /// <summary>The server's usage: the commands, then every flag with its value, default, help and vLLM spelling.</summary>
    public static string Server()
    {
        var text = new StringBuilder()
            .AppendLine("usage: InferenceServer [options]                      serve the OpenAI HTTP API (and gRPC with --grpc-port)")
            .AppendLine("       InferenceServer build --checkpoint <dir> --out <dir> [...]   build an ONNX model from a checkpoint")
            .AppendLine("       InferenceServer inspect <model.onnx | model folder>         describe a model")
            .AppendLine("       InferenceServer rewrite <model folder> --out <folder>       write the graph as the server runs it")
            .AppendLine("       InferenceServer bench latency --model <dir> [...]           time the model runner alone")
            .AppendLine("       InferenceServer <command> --help                           a command's options")
            .AppendLine()
            .AppendLine("options (each is also a configuration key: environment variables and appsettings.json set them too;")
            .AppendLine("boolean flags take no value, true/false, or their --no- form; --Section:Key value sets any configuration key):");
        var width = 0;
        foreach (var flag in ServerFlags.All)
        {
            width = Math.Max(width, Left(flag).Length);
        }

        foreach (var flag in ServerFlags.All)
        {
            text.Append("  ").Append(Left(flag).PadRight(width + 2)).Append(flag.Help);
            if (flag.Default is { } value)
            {
                text.Append(" [default: ").Append(value).Append(']');
            }

            if (flag.Vllm is { } vllm)
            {
                text.Append(vllm == "--" + flag.Name ? " (vLLM: same)" : $" (vLLM: {vllm})");
            }

            text.AppendLine();
        }

        text.AppendLine("  " + "-h, --help".PadRight(width + 2) + "this text")
            .AppendLine("  " + "--version".PadRight(width + 2) + "the server's and ONNX Runtime's versions");
        return text.ToString();
    }

    /// <summary><c>InferenceServer &lt;version&gt;</c> and <c>ONNX Runtime &lt;version&gt;</c>, one per line.</summary>
    public static string Version()
    {
        var assembly = typeof(HelpText).Assembly;
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "unknown";
        string runtime;
        try
        {
            runtime = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString();
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or BadImageFormatException)
        {
            runtime = $"unavailable ({ex.GetType().Name}: the native library did not load)";
        }

        return $"InferenceServer {version}\nONNX Runtime {runtime}\n.NET {Environment.Version}\n";
    }

    private static string Left(FlagDefinition flag) => "--" + flag.Name + " " + flag.Placeholder;
}
