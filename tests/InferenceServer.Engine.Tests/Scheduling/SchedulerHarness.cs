using System.Text.Json;
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>A real scheduler over a real fixture model, and the reference cases for it.</summary>
internal sealed class SchedulerHarness : IAsyncDisposable
{
    private SchedulerHarness(ServedModel model, ContinuousBatchScheduler scheduler)
    {
        Model = model;
        Scheduler = scheduler;
    }

    public ServedModel Model { get; }

    public ContinuousBatchScheduler Scheduler { get; }

    public static string Fixture(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tests", "fixtures", name);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(name);
    }

    public static SchedulerHarness Start(string fixture, SchedulerOptions? options = null)
    {
        var harness = Create(fixture, options);
        harness.Scheduler.Start();
        return harness;
    }

    /// <summary>A scheduler whose loop is not started: the test drives it with <see cref="ContinuousBatchScheduler.Step"/>.</summary>
    public static SchedulerHarness Create(string fixture, SchedulerOptions? options = null)
    {
        var model = ServedModel.Load(Fixture(fixture));
        var scheduler = new ContinuousBatchScheduler(model, options ?? new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance);
        return new SchedulerHarness(model, scheduler);
    }

    /// <summary>As <see cref="Create(string, SchedulerOptions?)"/>, over the model's own runner as <paramref name="wrap"/> wraps it.</summary>
    public static SchedulerHarness Create(string fixture, SchedulerOptions options, Func<InferenceServer.Onnx.Runtime.IModelRunner, InferenceServer.Onnx.Runtime.IModelRunner> wrap, ILogger? logger = null, InferenceServer.Engine.Observation.IEngineObserver? observer = null)
    {
        var model = ServedModel.Load(Fixture(fixture));
        var runner = wrap(model.CreateRunner(options.KvBudget));
        var scheduler = new ContinuousBatchScheduler(model, runner, options, logger ?? NullLogger<ContinuousBatchScheduler>.Instance, observer, null);
        return new SchedulerHarness(model, scheduler);
    }

    /// <summary>Steps the (not started) scheduler until no request is active; fails if that takes more than 5,000 steps.</summary>
    public void DriveToEnd()
    {
        for (var i = 0; i < 5000 && Scheduler.ActiveRequests > 0; i++)
        {
            Scheduler.Step();
        }

        Assert.Equal(0, Scheduler.ActiveRequests);
    }

    /// <summary>Updates already written to <paramref name="updates"/>, without waiting.</summary>
    public static List<GenerationUpdate> Drain(ChannelReader<GenerationUpdate> updates)
    {
        var list = new List<GenerationUpdate>();
        while (updates.TryRead(out var update))
        {
            list.Add(update);
        }

        return list;
    }

    public static IReadOnlyList<(int[] Prompt, int[] Greedy)> Cases(string fixture)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture(fixture), "reference.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => (c.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray(), c.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray()))
            .ToList();
    }

    public ChannelReader<GenerationUpdate> Submit(int[] prompt, int maxTokens, CancellationToken cancellationToken = default, int priority = 0, SamplingParameters? sampling = null, object? group = null)
    {
        var request = new GenerationRequest
        {
            RequestId = Guid.NewGuid().ToString("N"),
            PromptTokens = prompt,
            Sampling = sampling ?? SamplingParameters.Greedy,
            Stop = new StopConditions { MaxTokens = maxTokens, IgnoreEos = true },
            Priority = priority,
            PrefixGroup = group,
        };
        Assert.True(Scheduler.TrySubmit(request, out var updates, cancellationToken));
        return updates;
    }

    public static GenerationRequest Request(int[] prompt, int maxTokens, SamplingParameters? sampling = null, ITokenConstraint? constraint = null, bool ignoreEos = true) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"),
        PromptTokens = prompt,
        Sampling = sampling ?? SamplingParameters.Greedy,
        Stop = new StopConditions { MaxTokens = maxTokens, IgnoreEos = ignoreEos },
        Constraint = constraint,
    };

    public ChannelReader<GenerationUpdate> Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        Assert.True(Scheduler.TrySubmit(request, out var updates, cancellationToken));
        return updates;
    }

    /// <summary>Every update of a request, the final one last.</summary>
    public static async Task<List<GenerationUpdate>> CollectUpdatesAsync(ChannelReader<GenerationUpdate> updates)
    {
        var list = new List<GenerationUpdate>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var update in updates.ReadAllAsync(timeout.Token))
        {
            list.Add(update);
        }

        return list;
    }

    public static async Task<(int[] Tokens, GenerationUpdate Final)> CollectAsync(ChannelReader<GenerationUpdate> updates)
    {
        var tokens = new List<int>();
        GenerationUpdate final = default;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var update in updates.ReadAllAsync(timeout.Token))
        {
            if (update.TokenId >= 0)
            {
                tokens.Add(update.TokenId);
            }

            if (update.IsFinal)
            {
                final = update;
            }
        }

        return (tokens.ToArray(), final);
    }

    public async Task WaitIdleAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((Scheduler.ActiveRequests > 0 || Scheduler.UsedBlocks > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Scheduler.DisposeAsync();
        Model.Dispose();
    }
}
