// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Bench;
using InferenceServer.LoadGenerator;

const string Usage = """
    usage: InferenceServer.LoadGenerator [options]
           InferenceServer.LoadGenerator compare --server FILE[,FILE...] --baseline FILE[,FILE...]
           InferenceServer.LoadGenerator medians --reports FILE[,FILE...] [--label NAME]
           InferenceServer.LoadGenerator returning --conversations N [--followup-len F] [--returning-output-len R] [options]
             N first turns (--input-len prompt ids, --output-len tokens), then each returns in the same order with its
             history (prompt, answer, F new ids; default 64) for R tokens (default 16) at --concurrency; prints both
             phases (the returning turns' TTFT is the host KV tier's measure); --json writes them as two levels
      --url URL[,URL...]         server base URL (default http://127.0.0.1:8000); several: replicas, sent
                                 requests in turn (round robin, as a load balancer would)
      --model NAME               model id to send (default: none, the server's only model)
      --concurrency C            fixed concurrency (default 1); with --request-rate, the most requests in flight
      --request-rate R           Poisson arrivals at R requests/s (default: all at once, bounded by --concurrency)
      --sweep 1,4,16,64          run one level per concurrency and print one row each
      --num-prompts N            requests per level (default: max(8, 2 * concurrency))
      --input-len N              prompt tokens (default 128)
      --output-len N             max_tokens, with ignore_eos (default 128)
      --random-range-ratio X     draw lengths uniformly in [len * (1 - X), len * (1 + X)] (default 0: fixed)
      --vocab V                  prompt ids are drawn from [10, V) (default 4096)
      --seed S                   prompt and arrival seed (default 0)
      --warmup N                 warm-up requests before measuring (default 1)
      --check-reference FILE     first check that reference.json case 0 gives its greedy tokens
      --json FILE                also write the results as JSON
    """;

try
{
    if (args.Length > 0 && args[0] == "compare")
    {
        var compare = new CommandLine(args[1..], ["server", "baseline"], []);
        Console.Write(Comparison.Table(Reports(compare, "server"), Reports(compare, "baseline")));
        return 0;
    }

    if (args.Length > 0 && args[0] == "medians")
    {
        var medians = new CommandLine(args[1..], ["reports", "label"], []);
        Console.Write(Comparison.MedianRuns(Reports(medians, "reports"), medians.String("label")));
        return 0;
    }

    if (args.Length > 0 && args[0] == "returning")
    {
        return await ReturningAsync(new CommandLine(
            args[1..],
            ["url", "model", "concurrency", "conversations", "input-len", "output-len", "followup-len", "returning-output-len", "vocab", "seed", "json"],
            []));
    }

    var options = new CommandLine(
        args,
        ["url", "model", "concurrency", "request-rate", "sweep", "num-prompts", "input-len", "output-len", "random-range-ratio", "vocab", "seed", "warmup", "check-reference", "json"],
        ["help"]);
    if (options.Has("help"))
    {
        Console.WriteLine(Usage);
        return 0;
    }

    return await RunAsync(options);
}
catch (FormatException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}\n{Usage}");
    return 2;
}

static RunReport[] Reports(CommandLine options, string name) =>
    [.. (options.String(name) ?? throw new FormatException($"--{name} is required")).Split(',').Select(ResultTable.Read)];

static async Task<int> ReturningAsync(CommandLine options)
{
    var url = new Uri(options.String("url", "http://127.0.0.1:8000")!.TrimEnd('/') + "/");
    var conversations = options.String("conversations") is null ? throw new FormatException("--conversations is required") : options.Int("conversations", 1, 1);
    var concurrency = options.Int("concurrency", 1, 1);
    var inputLength = options.Int("input-len", 128, 1);
    var outputLength = options.Int("output-len", 128, 1);
    var followupLength = options.Int("followup-len", 64, 1);
    var returningOutputLength = options.Int("returning-output-len", 16, 1);
    var seed = options.Int("seed", 0);
    using var client = new CompletionClient(url, options.String("model"));
    var result = await ReturningConversations.RunAsync(
        client, conversations, inputLength, outputLength, followupLength, returningOutputLength, concurrency,
        options.Int("vocab", 4096, PromptSet.FirstId + 1), seed, CancellationToken.None);
    Console.WriteLine($"{url}: {conversations} conversations at concurrency {concurrency}; first turns {inputLength} + {outputLength} tokens, returning turns {ResultTable.F(result.HistoryTokens, 0)} history tokens (mean) + {returningOutputLength}");
    Console.WriteLine("first turns, then returning turns:");
    Console.Write(ResultTable.Summary([result.First, result.Returning]));
    Console.WriteLine($"returning turns: TTFT p50 {ResultTable.F(result.Returning.TtftMs.P50, 1)} ms, p99 {ResultTable.F(result.Returning.TtftMs.P99, 1)} ms, mean {ResultTable.F(result.Returning.TtftMs.Mean, 1)} ms");
    if (options.String("json") is { } json)
    {
        ResultTable.Write(json, new RunReport("returning", url.ToString(), inputLength, outputLength, 0, seed, [result.First, result.Returning]));
    }

    return result.First.Failed + result.Returning.Failed > 0 ? 1 : 0;
}

static Uri[] Urls(CommandLine options) =>
    [.. options.String("url", "http://127.0.0.1:8000")!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(static url => new Uri(url.TrimEnd('/') + "/"))];

static async Task<int> RunAsync(CommandLine options)
{
    var urls = Urls(options);
    var url = string.Join(",", urls.Select(static u => u.ToString()));
    var levels = options.IntList("sweep") ?? [options.Int("concurrency", options.Has("request-rate") ? 0 : 1, 0)];
    double? rate = options.Has("request-rate") ? options.Double("request-rate", 1, double.Epsilon) : null;
    var inputLength = options.Int("input-len", 128, 1);
    var outputLength = options.Int("output-len", 128, 1);
    var ratio = options.Double("random-range-ratio", 0);
    var vocab = options.Int("vocab", 4096, PromptSet.FirstId + 1);
    var seed = options.Int("seed", 0);

    using var client = new CompletionClient(urls, options.String("model"));
    using var cancel = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        cancel.Cancel();
    };

    var checkFailed = false;
    if (options.String("check-reference") is { } referencePath)
    {
        var reference = ReferenceCase.Load(referencePath);
        var outcome = await client.CompleteAsync(reference.Prompt, reference.Greedy.Length, ignoreEos: false, cancel.Token);
        var verdict = outcome.Error is { } error ? $"FAILED: {error}" : reference.Verdict(outcome.TokenIds, out _);
        checkFailed = outcome.Error is not null || !outcome.TokenIds.SequenceEqual(reference.Greedy);
        Console.WriteLine($"greedy check (reference.json case 0, {reference.Prompt.Length} prompt tokens): {verdict}");
    }

    var runner = new LoadRunner(client, ignoreEos: true);
    var warmup = options.Int("warmup", 1);
    if (warmup > 0)
    {
        var warm = PromptSet.Create(seed, -1, warmup, inputLength, Math.Min(outputLength, 16), 0, vocab);
        await runner.RunAsync(warm, warmup, null, seed, cancel.Token);
    }

    var results = new List<LevelResult>();
    foreach (var concurrency in levels)
    {
        var count = options.Int("num-prompts", Math.Max(8, 2 * concurrency), 1);
        var prompts = PromptSet.Create(seed, concurrency, count, inputLength, outputLength, ratio, vocab);
        var level = await runner.RunAsync(prompts, concurrency, rate, seed + concurrency, cancel.Token);
        results.Add(level);
        var label = rate is { } r ? $"request rate {r} req/s, max concurrency {(concurrency > 0 ? concurrency : "inf")}" : $"concurrency {concurrency}";
        Console.WriteLine($"{label}: {level.Successful} ok, {level.Failed} failed in {level.DurationS:F2} s, {level.OutputThroughput:F1} output tok/s");
    }

    Console.WriteLine();
    if (urls.Length > 1)
    {
        Console.WriteLine($"requests per server (round robin, warm-up included): {string.Join(", ", urls.Zip(client.SentPerServer(), static (u, n) => $"{u} {n}"))}");
    }

    Console.WriteLine($"{url} (continuous batching server), input {inputLength}, output {outputLength}{(ratio > 0 ? $", range ratio {ratio}" : string.Empty)}");
    Console.Write(results.Count == 1 ? ResultTable.Detail(results[0]) : ResultTable.Summary(results));
    if (options.String("json") is { } json)
    {
        ResultTable.Write(json, new RunReport("server", url, inputLength, outputLength, ratio, seed, results));
    }

    return checkFailed || results.Any(static l => l.Failed > 0) ? 1 : 0;
}
