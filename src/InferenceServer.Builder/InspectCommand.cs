// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Builder.Inspection;

namespace InferenceServer.Builder;

/// <summary>
/// The <c>inspect</c> command: <c>InferenceServer inspect &lt;model.onnx or model folder&gt;</c> prints the graph flavor and
/// dtype, the KV layout per index, the fused attention nodes, KV bytes per token, parameter count, and op counts with
/// the execution providers that run each op. A leading <c>inspect</c> verb
/// is accepted and skipped.
/// </summary>
public static class InspectCommand
{
    /// <summary>The usage line.</summary>
    public const string Usage = "usage: InferenceServer inspect <model.onnx | model folder>";

    /// <summary>Runs the command on the console; returns the exit code (0 ok, 1 unreadable model, 2 bad arguments).</summary>
    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out, Console.Error, CancellationToken.None);

    /// <summary>Runs the command writing to <paramref name="output"/> and <paramref name="error"/>; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var start = args.Length > 0 && args[0] == "inspect" ? 1 : 0;
        if (args.Length - start != 1)
        {
            await error.WriteLineAsync(Usage.AsMemory(), cancellationToken).ConfigureAwait(false);
            return 2;
        }

        ModelInspection inspection;
        try
        {
            inspection = ModelInspector.Inspect(args[start]);
        }
        catch (ModelBuildException ex)
        {
            await error.WriteLineAsync($"inspect failed: {ex.Message}".AsMemory(), cancellationToken).ConfigureAwait(false);
            return 1;
        }

        await output.WriteAsync(Format(inspection).AsMemory(), cancellationToken).ConfigureAwait(false);
        return 0;
    }

    /// <summary>The report's text.</summary>
    internal static string Format(ModelInspection m)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(c, $"model: {m.Path}");
        text.AppendLine(c, $"graph: {m.Graph}, dtype {m.DType}");
        text.AppendLine(c, $"ir {m.IrVersion}, opsets {string.Join(", ", m.Opsets)}");
        text.AppendLine(c, $"parameters: {m.ParameterCount} ({m.ExternalDataBytes} bytes in external data)");
        text.AppendLine(c, $"kv cache: {m.KvInputs.Count} indices, {m.KvBytesPerToken} bytes per token");
        foreach (var kv in m.KvInputs)
        {
            text.AppendLine(c, $"  [{kv.Index}] key {kv.KeyHeads}x{kv.KeyWidth}, value {kv.ValueHeads}x{kv.ValueWidth}, {kv.BytesPerToken} bytes/token");
        }

        text.AppendLine(c, $"fused attention nodes: {m.AttentionNodes.Count}");
        foreach (var node in m.AttentionNodes)
        {
            text.AppendLine(c, $"  {node.Name}: {node.OpType}, {node.QueryHeads} query heads, {node.KvHeads} kv heads, past {node.PastKey}, present {node.PresentKey}");
        }

        text.AppendLine("ops (execution providers that run them):");
        foreach (var (op, count) in m.Ops)
        {
            text.AppendLine(c, $"  {op} x{count} ({OpProviders.For(op)})");
        }

        return text.ToString();
    }
}
