using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The real executable (<c>dotnet InferenceServer.dll</c> from the test output, as the Dockerfile's entrypoint runs
/// it) on a free loopback port with JSON logs, its stdout collected line by line.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _reader;

    private ServerProcess(Process process)
    {
        _process = process;
        _reader = Task.Run(ReadStdoutAsync);
        _ = process.StandardError.ReadToEndAsync();
    }

    public Uri BaseAddress { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public int Id => _process.Id;

    /// <summary>Lines written to stdout so far.</summary>
    public IReadOnlyList<string> Lines => [.. _stdout];

    /// <summary>The JSON log events so far (every stdout line must be one).</summary>
    public List<JsonElement> Events => Lines.Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();

    public static Task<ServerProcess> StartAsync(params string[] args) => StartAsync(new Dictionary<string, string>(), args);

    /// <summary>Starts the server with <paramref name="environment"/> added to its environment (HF_ENDPOINT, HF_HUB_CACHE, ...).</summary>
    public static async Task<ServerProcess> StartAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "InferenceServer.dll"));
        foreach (var arg in (string[])["--model", RepositoryPaths.DefaultModel, "--urls", "http://127.0.0.1:0", "--log-format", "json", .. args])
        {
            start.ArgumentList.Add(arg);
        }

        var server = new ServerProcess(Process.Start(start)!);
        server.BaseAddress = await server._listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
        server.Http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(120) };
        return server;
    }

    /// <summary>Sends SIGTERM, as a container runtime or Kubernetes does.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        await _reader.WaitAsync(TimeSpan.FromSeconds(10));
        return _process.ExitCode;
    }

    /// <summary>Log events whose MEL event name is <paramref name="name"/>.</summary>
    public List<JsonElement> EventsNamed(string name)
        => Events.Where(e => e.TryGetProperty("EventId", out var id) && id.TryGetProperty("Name", out var n) && n.GetString() == name).ToList();

    private async Task ReadStdoutAsync()
    {
        try
        {
            while (await _process.StandardOutput.ReadLineAsync() is { } line)
            {
                _stdout.Enqueue(line);
                if (!_listening.Task.IsCompleted && line.Contains("Now listening on", StringComparison.Ordinal))
                {
                    _listening.TrySetResult(new Uri(JsonDocument.Parse(line).RootElement.GetProperty("address").GetString()!));
                }
            }
        }
        catch (Exception ex)
        {
            _listening.TrySetException(ex);
        }

        _listening.TrySetException(new InvalidOperationException("The server exited before listening: " + string.Join('\n', _stdout)));
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
