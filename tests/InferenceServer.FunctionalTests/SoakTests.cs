using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.FunctionalTests.Grpc;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// A bounded soak: mixed load over HTTP and gRPC (plain, streamed, n &gt; 1, client disconnects mid-request, deadlines that
/// expire, bad requests, bursts past a small queue) for <c>SOAK_SECONDS</c> (default 30; <c>bench/soak/soak.sh</c> runs
/// the long version). At the end: every request that was not abandoned by its client got a whole answer (a completion,
/// a 4xx/429, or a 504 for its deadline; never a 5xx or a hang), no request is stuck, the KV blocks in use are back to
/// zero, and memory after warm-up stayed flat: the managed heap, and the process's resident set (RSS, what the kernel
/// and a container limit count, including native ONNX Runtime memory), whose growth after warm-up and peak are bounded.
/// The figures go to the test output and to <c>SOAK_REPORT</c>.
/// </summary>
[Collection(SoakCollection.Name)]
public sealed class SoakTests(ITestOutputHelper output)
{
    private const int Workers = 12;

    private static readonly string[] Prompts = ["def fibonacci(n):", "import numpy as np\n", "class Parser:\n    def __init__(self", "# sort a list\n", "for i in range(10):"];

    private static readonly string[] BadBodies =
    [
        "{not json", """{"prompt":5}""", """{"prompt":"x","max_tokens":-1}""", """{"prompt":"x","n":17}""", """{"prompt":"x","logprobs":21}""",
        """{"prompt":"x","temperature":"hot"}""", """{"prompt":[99999]}""", """{"prompt":"x","max_tokens":5000}""", """{"prompt":"x","timeout":-3}""", "[]",
    ];

    private sealed class Tally
    {
        public long Served;
        public long Streamed;
        public long Cancelled;
        public long TimedOut;
        public long Rejected;
        public long QueueFull;
        public long Grpc;
        public long Failures;
        public readonly List<string> FailureSamples = [];

        public void Fail(string what)
        {
            Interlocked.Increment(ref Failures);
            lock (FailureSamples)
            {
                if (FailureSamples.Count < 10)
                {
                    FailureSamples.Add(what);
                }
            }
        }
    }

    [Fact]
    public async Task MixedLoad_WithCancellationsTimeoutsAndBadRequests_LeavesNothingBehind()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("SOAK_SECONDS"), out var s) ? s : 30;
        var duration = TimeSpan.FromSeconds(seconds);
        var warmUp = TimeSpan.FromSeconds(Math.Min(10, seconds / 4.0));
        await using var server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--max-queued-requests", "12", "--max-num-seqs", "8", "--max-request-timeout", "120");
        var scheduler = server.Scheduler;
        var tally = new Tally();
        var started = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(duration);

        var peakBlocks = 0;
        var samples = new List<(double Seconds, long Managed, long Rss, long Committed)>();
        long warmManaged = -1;
        long warmRss = -1;
        long peakRss = -1;
        var monitor = Task.Run(async () =>
        {
            var nextSample = TimeSpan.Zero;
            while (!stop.IsCancellationRequested)
            {
                peakBlocks = Math.Max(peakBlocks, scheduler.UsedBlocks);
                if (started.Elapsed >= nextSample)
                {
                    var managed = GC.GetTotalMemory(forceFullCollection: false);
                    var rss = ResidentSetSize();
                    samples.Add((started.Elapsed.TotalSeconds, managed, rss, GC.GetGCMemoryInfo().TotalCommittedBytes));
                    if (warmRss >= 0)
                    {
                        peakRss = Math.Max(peakRss, rss);
                    }
                    nextSample += TimeSpan.FromSeconds(Math.Max(1, seconds / 30.0));
                }

                if (warmManaged < 0 && started.Elapsed >= warmUp)
                {
                    warmManaged = SettledManagedMemory();
                    warmRss = ResidentSetSize();
                    peakRss = warmRss;
                }

                await Task.Delay(2);
            }
        });

        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(() => WorkAsync(server, w, tally, stop.Token))).ToArray();
        await Task.WhenAll(workers);
        await monitor;

        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 0 && scheduler.QueuedRequests == 0 && scheduler.UsedBlocks == 0, "engine idle after the soak", seconds: 120);
        var endManaged = SettledManagedMemory();
        var endRss = ResidentSetSize();

        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"# Soak {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        report.AppendLine();
        report.AppendLine(CultureInfo.InvariantCulture, $"Duration {seconds} s (warm-up {warmUp.TotalSeconds:0} s), {Workers} concurrent clients, default model (tiny-pycoder), --max-queued-requests 12 --max-num-seqs 8, {Environment.ProcessorCount} cores.");
        report.AppendLine();
        report.AppendLine("| figure | value |");
        report.AppendLine("|---|---|");
        report.AppendLine(CultureInfo.InvariantCulture, $"| requests served (whole completions, HTTP and gRPC) | {tally.Served} (of which streamed {tally.Streamed}, gRPC {tally.Grpc}) |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| cancelled by their clients (disconnects) | {tally.Cancelled} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| ended by their deadline (504 timeout) | {tally.TimedOut} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| rejected (4xx; of which 429 queue full {tally.QueueFull}) | {tally.Rejected} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| failures (5xx, hangs, malformed answers) | {tally.Failures} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| KV blocks in use: peak / final (pool {scheduler.TotalBlocks}) | {peakBlocks} / {scheduler.UsedBlocks} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| active / queued requests at the end | {scheduler.ActiveRequests} / {scheduler.QueuedRequests} |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| managed heap after warm-up / at the end (after full GC) | {Mib(warmManaged)} / {Mib(endManaged)} MiB |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| process RSS after warm-up / peak after warm-up / at the end | {Mib(warmRss)} / {Mib(peakRss)} / {Mib(endRss)} MiB |");
        report.AppendLine(CultureInfo.InvariantCulture, $"| model steps run | {scheduler.Steps} |");
        report.AppendLine();
        report.AppendLine("Memory over time (s: managed MiB, RSS MiB, GC committed MiB): " + string.Join("; ", samples.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Seconds:0}: {Mib(p.Managed)}, {Mib(p.Rss)}, {Mib(p.Committed)}"))));
        if (tally.FailureSamples.Count > 0)
        {
            report.AppendLine();
            report.AppendLine("Failures: " + string.Join(" | ", tally.FailureSamples));
        }

        var text = report.ToString();
        output.WriteLine(text);
        if (Environment.GetEnvironmentVariable("SOAK_REPORT") is { Length: > 0 } path)
        {
            await File.WriteAllTextAsync(path, text);
        }

        Assert.True(tally.Failures == 0, text);
        Assert.True(tally.Served > 0 && tally.Cancelled > 0 && tally.TimedOut > 0 && tally.Rejected > 0, "the mix did not exercise every path:\n" + text);
        Assert.Equal(0, scheduler.UsedBlocks);

        // Flat: what the load leaves on the managed heap once collected is small next to what it allocated.
        Assert.True(endManaged - warmManaged < 48L * 1024 * 1024, $"managed memory grew from {Mib(warmManaged)} to {Mib(endManaged)} MiB:\n{text}");

        // Flat RSS: after warm-up (model loaded, KV pool and ONNX Runtime arenas sized, GC heap grown to its working
        // size) the load may add allocator slack, not a per-request leak: a leak of even 20 KiB per request crosses
        // this bound within a long soak.
        Assert.True(endRss - warmRss < RssGrowthBudget, $"RSS grew from {Mib(warmRss)} to {Mib(endRss)} MiB after warm-up:\n{text}");
        Assert.True(peakRss - warmRss < 2 * RssGrowthBudget, $"RSS peaked at {Mib(peakRss)} MiB after {Mib(warmRss)} MiB at warm-up:\n{text}");
    }

    /// <summary>The most the resident set may grow from warm-up to the end: 128 MiB.</summary>
    private const long RssGrowthBudget = 128L * 1024 * 1024;

    /// <summary>The process's resident set: <c>VmRSS</c> from <c>/proc/self/status</c> where it exists, else the working set.</summary>
    private static long ResidentSetSize()
    {
        if (File.Exists("/proc/self/status"))
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }
        }

        return Environment.WorkingSet;
    }

    private static long SettledManagedMemory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture);

    private static async Task WorkAsync(TestServer server, int worker, Tally tally, CancellationToken stop)
    {
        var random = new Random(1000 + worker);
        while (!stop.IsCancellationRequested)
        {
            var prompt = JsonSerializer.Serialize(Prompts[random.Next(Prompts.Length)]);
            var roll = random.Next(100);
            var queueFull = Interlocked.Read(ref tally.QueueFull);
            try
            {
                if (roll < 35)
                {
                    await PlainAsync(server, tally, $$"""{"prompt":{{prompt}},"max_tokens":{{random.Next(1, 40)}},"temperature":{{random.Next(0, 2)}},"n":{{(random.Next(5) == 0 ? 2 : 1)}}}""");
                }
                else if (roll < 50)
                {
                    await StreamAsync(server, tally, $$$"""{"prompt":{{{prompt}}},"max_tokens":{{{random.Next(1, 40)}}},"stream":true,"stream_options":{"include_usage":true}}""", abandonAfter: -1);
                }
                else if (roll < 60)
                {
                    await StreamAsync(server, tally, $$"""{"prompt":{{prompt}},"max_tokens":400,"ignore_eos":true,"stream":true}""", abandonAfter: random.Next(1, 20));
                }
                else if (roll < 68)
                {
                    await AbandonPlainAsync(server, tally, $$"""{"prompt":{{prompt}},"max_tokens":400,"ignore_eos":true}""", TimeSpan.FromMilliseconds(random.Next(5, 300)));
                }
                else if (roll < 76)
                {
                    var timeout = (random.Next(5, 40) / 100.0).ToString(CultureInfo.InvariantCulture);
                    await PlainAsync(server, tally, $$"""{"prompt":{{prompt}},"max_tokens":1500,"ignore_eos":true,"timeout":{{timeout}}}""", mayTimeOut: true);
                }
                else if (roll < 88)
                {
                    await PlainAsync(server, tally, BadBodies[random.Next(BadBodies.Length)], expectClientError: true);
                }
                else
                {
                    await GrpcAsync(server, tally, random);
                }
            }
            catch (Exception ex) when (!stop.IsCancellationRequested)
            {
                tally.Fail($"{ex.GetType().Name}: {ex.Message}");
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                // A request cut by the end of the run is not counted either way.
            }

            if (Interlocked.Read(ref tally.QueueFull) != queueFull)
            {
                // As a client honouring Retry-After would (shortened): back off instead of hammering a full queue.
                await Task.Delay(random.Next(50, 250), CancellationToken.None);
            }
        }
    }

    private static async Task PlainAsync(TestServer server, Tally tally, string body, bool expectClientError = false, bool mayTimeOut = false)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        using var response = await server.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"), timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        using var document = JsonDocument.Parse(text);
        var status = (int)response.StatusCode;
        if (status == 200 && !expectClientError && document.RootElement.GetProperty("choices").GetArrayLength() > 0)
        {
            Interlocked.Increment(ref tally.Served);
        }
        else if (status == 504 && mayTimeOut && document.RootElement.GetProperty("error").GetProperty("code").GetString() == "timeout")
        {
            Interlocked.Increment(ref tally.TimedOut);
        }
        else if (status is >= 400 and < 500 && document.RootElement.GetProperty("error").GetProperty("message").GetString() is { Length: > 0 })
        {
            Interlocked.Increment(ref tally.Rejected);
            if (status == 429)
            {
                Interlocked.Increment(ref tally.QueueFull);
            }
        }
        else
        {
            tally.Fail($"{status} for {body[..Math.Min(body.Length, 120)]}: {text[..Math.Min(text.Length, 300)]}");
        }
    }

    private static async Task StreamAsync(TestServer server, Tally tally, string body, int abandonAfter)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            Interlocked.Increment(ref tally.Rejected);
            Interlocked.Increment(ref tally.QueueFull);
            return;
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            tally.Fail($"stream {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(timeout.Token)}");
            return;
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
        var events = 0;
        var done = false;
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                continue;
            }

            if (line == "data: [DONE]")
            {
                done = true;
                break;
            }

            using (var chunk = JsonDocument.Parse(line[6..]))
            {
                if (chunk.RootElement.TryGetProperty("error", out _))
                {
                    tally.Fail("error event: " + line);
                    return;
                }
            }

            if (++events == abandonAfter)
            {
                // The client goes away mid-stream: disposing the response closes the connection.
                Interlocked.Increment(ref tally.Cancelled);
                return;
            }
        }

        if (done)
        {
            Interlocked.Increment(ref tally.Served);
            Interlocked.Increment(ref tally.Streamed);
        }
        else if (abandonAfter < 0 || events < abandonAfter)
        {
            tally.Fail("a stream ended without [DONE]");
        }
    }

    private static async Task AbandonPlainAsync(TestServer server, Tally tally, string body, TimeSpan after)
    {
        using var cancel = new CancellationTokenSource(after);
        try
        {
            using var response = await server.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"), cancel.Token);
            _ = await response.Content.ReadAsStringAsync(cancel.Token);
            Interlocked.Increment(ref response.StatusCode == HttpStatusCode.OK ? ref tally.Served : ref tally.Rejected);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Interlocked.Increment(ref tally.Cancelled);
        }
    }

    private static async Task GrpcAsync(TestServer server, Tally tally, Random random)
    {
        var request = new GenerateRequest
        {
            Text = Prompts[random.Next(Prompts.Length)],
            Sampling = new SamplingParameters { Temperature = 0, N = (uint)random.Next(1, 3) },
            Stop = new StopConditions { MaxTokens = (uint)random.Next(1, 30) },
        };
        try
        {
            var result = await GenerateResult.ReadAsync(server.Grpc!, request, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(150)));
            if (result.Completes.Count == request.Sampling.N)
            {
                Interlocked.Increment(ref tally.Served);
                Interlocked.Increment(ref tally.Grpc);
            }
            else
            {
                tally.Fail($"gRPC: {result.Completes.Count} completions of {request.Sampling.N}");
            }
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted)
        {
            Interlocked.Increment(ref tally.Rejected);
            Interlocked.Increment(ref tally.QueueFull);
        }
    }
}
