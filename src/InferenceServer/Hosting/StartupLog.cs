// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Observability;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Parsing;

namespace InferenceServer.Hosting;

/// <summary>
/// The lines the server writes before its logger exists (the model's device, the graph rewrite, a checkpoint build, a
/// hub download, a startup error). With <c>--log-format text</c> they are <c>info: ...</c> / <c>error: ...</c> on
/// stderr as always; with <c>--log-format json</c> they are compact JSON like every later line: information on
/// stdout with the rest of the log, errors on stderr, so that every line a collector reads is one JSON object.
/// </summary>
internal sealed class StartupLog : IDisposable
{
    /// <summary>The <c>SourceContext</c> of the JSON lines.</summary>
    public const string Category = "InferenceServer.Startup";

    private readonly Serilog.Core.Logger? _json;

    /// <summary>Creates the log for <paramref name="format"/>.</summary>
    public StartupLog(LogFormat format)
    {
        if (format == LogFormat.Json)
        {
            _json = new LoggerConfiguration()
                .MinimumLevel.Verbose()
                .Enrich.WithProperty("SourceContext", Category)
                .WriteTo.Console(new RenderedCompactJsonFormatter(), standardErrorFromLevel: LogEventLevel.Error)
                .CreateLogger();
        }
    }

    /// <summary>
    /// The log for a command line that may not have parsed: JSON when the raw arguments ask for it
    /// (<c>--log-format json</c> or <c>--log-format=json</c>), else text.
    /// </summary>
    public static StartupLog For(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        for (var i = 0; i < args.Count; i++)
        {
            if (string.Equals(args[i], "--log-format=json", StringComparison.OrdinalIgnoreCase)
                || (args[i] == "--log-format" && i + 1 < args.Count && string.Equals(args[i + 1], "json", StringComparison.OrdinalIgnoreCase)))
            {
                return new StartupLog(LogFormat.Json);
            }
        }

        return new StartupLog(LogFormat.Text);
    }

    /// <summary>One information line.</summary>
    public void Info(string line) => Write("info: ", LogEventLevel.Information, line);

    /// <summary>One warning line (a setting the server keeps, though it may hurt).</summary>
    public void Warning(string line) => Write("warning: ", LogEventLevel.Warning, line);

    /// <summary>The error that stops the server.</summary>
    public void Error(string line) => Write("error: ", LogEventLevel.Fatal, line);

    /// <summary>Text: <paramref name="prefix"/> and the line on stderr; JSON: one event on stdout.</summary>
    private void Write(string prefix, LogEventLevel level, string line)
    {
        if (_json is null)
        {
            Console.Error.WriteLine(prefix + line);
        }
        else
        {
            Write(level, line);
        }
    }

    // The line is the whole message (a text-only template), so braces in paths are not read as properties.
    private void Write(LogEventLevel level, string line)
        => _json!.Write(new LogEvent(DateTimeOffset.Now, level, null, new MessageTemplate([new TextToken(line)]), []));

    /// <inheritdoc />
    public void Dispose() => _json?.Dispose();
}
