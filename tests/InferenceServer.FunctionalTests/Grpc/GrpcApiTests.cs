using System.Text.Json;
using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary><c>inference.v1.Inference</c> on the default model through a real gRPC channel (Grpc.Net.Client) on the server's gRPC port.</summary>
public sealed class GrpcApiTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private const string Prompt = "def fibonacci(n):";

    private TestServer Server => fixture.Server;

    private Inference.InferenceClient Client => Server.Grpc!;

    private static GenerateRequest Greedy(string text, uint maxTokens) => new()
    {
        Text = text,
        Sampling = new SamplingParameters { Temperature = 0 },
        Stop = new StopConditions { MaxTokens = maxTokens },
    };

    [Theory]
    [InlineData("def fibonacci(n):", 48)]
    [InlineData("import numpy as np\n", 20)]
    [InlineData("class Parser:\n", 32)]
    public async Task Generate_Greedy_EqualsHttpApi(string prompt, int maxTokens)
    {
        var http = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(prompt)}},"max_tokens":{{maxTokens}},"temperature":0,"return_token_ids":true}""");
        var httpChoice = http.GetProperty("choices")[0];

        var grpc = await GenerateResult.ReadAsync(Client, Greedy(prompt, (uint)maxTokens));

        Assert.Equal(httpChoice.GetProperty("text").GetString(), grpc.Text[0]);
        Assert.Equal(httpChoice.GetProperty("token_ids").EnumerateArray().Select(e => (uint)e.GetInt32()), grpc.TokenIds[0]);
        var complete = Assert.Single(grpc.Completes).Value;
        var expectedFinish = httpChoice.GetProperty("finish_reason").GetString() == "stop" ? FinishReason.Stop : FinishReason.Length;
        Assert.Equal(expectedFinish, complete.FinishReason);
        Assert.Equal((uint)http.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), complete.Usage.PromptTokens);
        Assert.Equal((uint)http.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), complete.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Generate_PenaltiesBiasMinPAndLogprobs_EqualHttpApi()
    {
        var http = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":12,"temperature":0.8,"seed":4,"min_p":0.05,"presence_penalty":1,"frequency_penalty":0.5,"repetition_penalty":1.3,"logit_bias":{"268":-100},"logprobs":2,"return_token_ids":true}""");
        var httpChoice = http.GetProperty("choices")[0];
        var request = new GenerateRequest
        {
            Text = Prompt,
            Sampling = new SamplingParameters { Temperature = 0.8, Seed = 4, MinP = 0.05, PresencePenalty = 1, FrequencyPenalty = 0.5, RepetitionPenalty = 1.3, Logprobs = true, TopLogprobs = 2, LogitBias = { [268] = -100 } },
            Stop = new StopConditions { MaxTokens = 12 },
        };
        var ids = new List<uint>();
        var logprobs = new List<float>();
        using var call = Client.Generate(request);
        await foreach (var message in call.ResponseStream.ReadAllAsync())
        {
            if (message.Chunk is { } chunk)
            {
                ids.AddRange(chunk.TokenIds);
                foreach (var entry in chunk.Logprobs)
                {
                    Assert.Equal(2, entry.TopLogprobs.Count);
                    logprobs.Add(entry.Logprob);
                }
            }
        }

        Assert.Equal(httpChoice.GetProperty("token_ids").EnumerateArray().Select(e => (uint)e.GetInt32()), ids);
        Assert.DoesNotContain(268u, ids);
        Assert.Equal(httpChoice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Select(e => e.GetSingle()), logprobs);
    }

    [Fact]
    public async Task Generate_TokenIdInput_EqualsTextInput()
    {
        var tokens = await Client.TokenizeAsync(new TokenizeRequest { Text = Prompt });
        var byIds = new GenerateRequest { TokenIds = new TokenIds { Ids = { tokens.TokenIds } }, Sampling = new SamplingParameters { Temperature = 0 }, Stop = new StopConditions { MaxTokens = 12 } };
        var fromIds = await GenerateResult.ReadAsync(Client, byIds);
        var fromText = await GenerateResult.ReadAsync(Client, Greedy(Prompt, 12));
        Assert.Equal(fromText.TokenIds[0], fromIds.TokenIds[0]);
        Assert.Equal(fromText.Text[0], fromIds.Text[0]);
        Assert.Equal(12, fromIds.TokenIds[0].Count);
    }

    [Fact]
    public async Task Generate_StreamCarriesRequestIdTimingsAndUsage()
    {
        var result = await GenerateResult.ReadAsync(Client, Greedy("import sys\n", 6));
        Assert.NotNull(result.HeaderRequestId);
        Assert.StartsWith("gen-", result.HeaderRequestId);
        Assert.Equal(result.HeaderRequestId, result.Messages[0].RequestId);
        Assert.All(result.Messages.Skip(1), m => Assert.Equal("", m.RequestId));

        var chunks = result.Messages.Where(m => m.Chunk is not null).Select(m => m.Chunk).ToList();
        Assert.Equal(6, chunks.Sum(c => c.TokenIds.Count));
        Assert.True(chunks[0].Timing.SinceArrivalUs > 0);
        Assert.Equal(chunks[0].Timing.SinceArrivalUs, chunks[0].Timing.SincePreviousUs);
        for (var i = 1; i < chunks.Count; i++)
        {
            Assert.True(chunks[i].Timing.SinceArrivalUs >= chunks[i - 1].Timing.SinceArrivalUs);
            Assert.Equal(chunks[i].Timing.SinceArrivalUs - chunks[i - 1].Timing.SinceArrivalUs, chunks[i].Timing.SincePreviousUs);
        }

        var last = result.Messages[^1];
        Assert.Equal(GenerateResponse.ResponseOneofCase.Complete, last.ResponseCase);
        Assert.Equal(FinishReason.Length, last.Complete.FinishReason);
        Assert.Equal(6u, last.Complete.Usage.CompletionTokens);
        Assert.Equal(chunks[0].Timing.SinceArrivalUs, last.Complete.TimeToFirstTokenUs);
        Assert.True(last.Complete.TotalTimeUs >= chunks[^1].Timing.SinceArrivalUs);
    }

    [Fact]
    public async Task Generate_N_GivesNChoices_SeedReproduces()
    {
        var request = new GenerateRequest
        {
            Text = "class Parser:\n",
            Sampling = new SamplingParameters { Temperature = 1, TopP = 0.95, TopK = 50, Seed = 1234, N = 3 },
            Stop = new StopConditions { MaxTokens = 16, IgnoreEos = true },
        };
        var first = await GenerateResult.ReadAsync(Client, request);
        var second = await GenerateResult.ReadAsync(Client, request);
        Assert.Equal([0u, 1u, 2u], first.Completes.Keys.Order());
        for (uint k = 0; k < 3; k++)
        {
            Assert.Equal(16, first.TokenIds[k].Count);
            Assert.Equal(first.TokenIds[k], second.TokenIds[k]);
        }

        Assert.NotEqual(first.TokenIds[0], first.TokenIds[1]);

        // Same as the HTTP API's choices for the same seed (choice k uses seed + k there too).
        var http = await Server.CompleteAsync("""{"prompt":"class Parser:\n","max_tokens":16,"temperature":1,"top_p":0.95,"top_k":50,"seed":1234,"n":3,"ignore_eos":true,"return_token_ids":true}""");
        var choices = http.GetProperty("choices").EnumerateArray().ToList();
        for (var k = 0; k < 3; k++)
        {
            Assert.Equal(choices[k].GetProperty("token_ids").EnumerateArray().Select(e => (uint)e.GetInt32()), first.TokenIds[(uint)choices[k].GetProperty("index").GetInt32()]);
        }
    }

    [Fact]
    public async Task Generate_StopStringAndStopTokenId_FinishWithStop()
    {
        var byString = Greedy(Prompt, 48);
        byString.Stop.Stop.Add("fibonacci function");
        var result = await GenerateResult.ReadAsync(Client, byString);
        Assert.Equal("\n    \"\"\"\n    Compute the ", result.Text[0]);
        Assert.Equal(FinishReason.Stop, result.Completes[0].FinishReason);

        var byToken = Greedy(Prompt, 10);
        byToken.Stop.StopTokenIds.Add(432);
        result = await GenerateResult.ReadAsync(Client, byToken);
        Assert.Equal([268u, 432u], result.TokenIds[0]);
        Assert.Equal("\n   ", result.Text[0]);
        Assert.Equal(FinishReason.Stop, result.Completes[0].FinishReason);
    }

    [Fact]
    public async Task CancelMidStream_FreesBlocks()
    {
        using var cts = new CancellationTokenSource();
        var request = Greedy("def main():\n", 2000);
        request.Stop.IgnoreEos = true;
        using (var call = Client.Generate(request, cancellationToken: cts.Token))
        {
            Assert.True(await call.ResponseStream.MoveNext(cts.Token));
            Assert.True(await call.ResponseStream.MoveNext(cts.Token));

            // A chunk can reach the client before the engine publishes the step's block count at the step's end.
            await Eventually.TrueAsync(() => Server.Scheduler.UsedBlocks > 0, "blocks in use while streaming");
            await cts.CancelAsync();
            var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        }

        await AssertEngineIdleAsync();
    }

    [Fact]
    public async Task Deadline_EndsWithDeadlineExceeded_AndFreesBlocks()
    {
        var request = Greedy("def main():\n", 2000);
        request.Stop.IgnoreEos = true;
        var ex = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(Client, request, new CallOptions(deadline: DateTime.UtcNow.AddMilliseconds(300))));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        await AssertEngineIdleAsync();
    }

    [Fact]
    public async Task Abort_CancelsTheRunningRequest_AndFreesBlocks()
    {
        var request = Greedy("def main():\n", 2000);
        request.Stop.IgnoreEos = true;
        request.RequestId = "abort-me-" + Guid.NewGuid().ToString("N");
        using var call = Client.Generate(request, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(request.RequestId, call.ResponseStream.Current.RequestId);

        // Another call with the same id is refused while the first runs.
        var duplicate = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(Client, request));
        Assert.Equal(StatusCode.AlreadyExists, duplicate.StatusCode);

        await Client.AbortAsync(new AbortRequest { RequestId = request.RequestId });
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.Contains("Abort", ex.Status.Detail);
        await AssertEngineIdleAsync();

        var unknown = await Assert.ThrowsAsync<RpcException>(() => Client.AbortAsync(new AbortRequest { RequestId = request.RequestId }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains(request.RequestId, unknown.Status.Detail);
    }

    [Fact]
    public async Task SlowClient_DoesNotStallOtherRequests()
    {
        var request = Greedy("def main():\n", 1500);
        request.Stop.IgnoreEos = true;
        using var cts = new CancellationTokenSource();
        using var idle = Client.Generate(request, cancellationToken: cts.Token);

        // The first call is never read; another completes all the same.
        var other = await GenerateResult.ReadAsync(Client, Greedy(Prompt, 24)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(24, other.TokenIds[0].Count);
        await cts.CancelAsync();
        await AssertEngineIdleAsync();
    }

    public static TheoryData<string, string> InvalidRequests => new()
    {
        { """{"text":"x","sampling":{"temperature":3}}""", "sampling.temperature" },
        { """{"text":"x","sampling":{"temperature":"NaN"}}""", "sampling.temperature" },
        { """{"text":"x","sampling":{"topP":0}}""", "sampling.top_p" },
        { """{"text":"x","sampling":{"topK":-2}}""", "sampling.top_k" },
        { """{"text":"x","sampling":{"n":17}}""", "sampling.n" },
        { """{"text":"x","sampling":{"minP":1.5}}""", "sampling.min_p" },
        { """{"text":"x","sampling":{"presencePenalty":2.5}}""", "sampling.presence_penalty" },
        { """{"text":"x","sampling":{"frequencyPenalty":-2.5}}""", "sampling.frequency_penalty" },
        { """{"text":"x","sampling":{"repetitionPenalty":0}}""", "sampling.repetition_penalty" },
        { """{"text":"x","sampling":{"logitBias":{"5":101}}}""", "sampling.logit_bias" },
        { """{"text":"x","sampling":{"logitBias":{"99999":1}}}""", "sampling.logit_bias" },
        { """{"text":"x","sampling":{"logprobs":true,"topLogprobs":21}}""", "sampling.top_logprobs" },
        { """{"text":"x","sampling":{"topLogprobs":2}}""", "sampling.top_logprobs" },
        { """{"text":"x","stop":{"maxTokens":0}}""", "stop.max_tokens" },
        { """{"text":"x","stop":{"maxTokens":5000}}""", "stop.max_tokens" },
        { """{"text":"x","stop":{"maxTokens":2,"minTokens":5}}""", "stop.min_tokens" },
        { """{"text":"x","stop":{"stop":[""]}}""", "stop.stop" },
        { """{"text":"x","stop":{"stopTokenIds":[99999]}}""", "stop.stop_token_ids" },
        { """{"tokenIds":{"ids":[1, 99999]}}""", "token_ids.ids" },
        { """{"tokenIds":{"ids":[]}}""", "token_ids.ids" },
        { """{"text":""}""", "text" },
        { """{}""", "input" },
        { """{"text":"x","requestId":"has space"}""", "request_id" },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public async Task InvalidRequest_IsInvalidArgument_NamingTheField(string json, string field)
    {
        var request = Google.Protobuf.JsonParser.Default.Parse<GenerateRequest>(json);
        var ex = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(Client, request));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.StartsWith(field + ": ", ex.Status.Detail);
        Assert.Equal(field, ex.Trailers.GetValue("invalid-field"));
        Assert.True(ex.Status.Detail.Length > field.Length + 20, ex.Status.Detail);
        Assert.Equal(0, Server.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task UnsupportedFields_InTheirOffForm_AreAccepted()
    {
        var request = Google.Protobuf.JsonParser.Default.Parse<GenerateRequest>("""{"text":"x","sampling":{"temperature":0,"minP":0,"presencePenalty":0,"frequencyPenalty":0,"repetitionPenalty":1,"logprobs":false},"stop":{"maxTokens":2}}""");
        var result = await GenerateResult.ReadAsync(Client, request);
        Assert.Equal(2u, result.Completes[0].Usage.CompletionTokens);
    }

    [Fact]
    public async Task UnknownModel_IsNotFound()
    {
        var request = Greedy("x", 2);
        request.Model = "gpt-4";
        var ex = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(Client, request));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Contains("tiny-pycoder", ex.Status.Detail);
        ex = await Assert.ThrowsAsync<RpcException>(() => Client.GetModelInfoAsync(new GetModelInfoRequest { Model = "gpt-4" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        ex = await Assert.ThrowsAsync<RpcException>(() => Client.TokenizeAsync(new TokenizeRequest { Model = "gpt-4", Text = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task TokenizeDetokenize_RoundTrip_MatchesHttpPromptIds()
    {
        var tokens = await Client.TokenizeAsync(new TokenizeRequest { Text = Prompt });
        var http = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":1,"return_token_ids":true}""");
        Assert.Equal(http.GetProperty("choices")[0].GetProperty("prompt_token_ids").EnumerateArray().Select(e => (uint)e.GetInt32()), tokens.TokenIds);
        var text = await Client.DetokenizeAsync(new DetokenizeRequest { TokenIds = { tokens.TokenIds } });
        Assert.Equal(Prompt, text.Text);

        var bad = await Assert.ThrowsAsync<RpcException>(() => Client.DetokenizeAsync(new DetokenizeRequest { TokenIds = { 99999u } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
    }

    [Fact]
    public async Task ModelInfo_DescribesContextVocabularyAndLayers()
    {
        var list = await Client.ListModelsAsync(new ListModelsRequest());
        var info = Assert.Single(list.Models);
        Assert.Equal(info, await Client.GetModelInfoAsync(new GetModelInfoRequest()));
        Assert.Equal(info, await Client.GetModelInfoAsync(new GetModelInfoRequest { Model = "tiny-pycoder" }));

        var spec = Server.Scheduler.Model.Spec;
        Assert.Equal("tiny-pycoder", info.Id);
        Assert.Equal(2048u, info.ContextLength);
        Assert.Equal((uint)spec.VocabularySize, info.VocabularySize);
        Assert.True(info.HasTokenizer);
        Assert.Equal(4, info.AttentionLayers.Count);
        Assert.All(info.AttentionLayers, layer =>
        {
            Assert.Equal(2u, layer.KeyHeads);
            Assert.Equal(64u, layer.KeyHeadSize);
            Assert.Equal(2u, layer.ValueHeads);
            Assert.Equal(64u, layer.ValueHeadSize);
        });
        Assert.Equal([0u, 1u, 2u, 3u], info.AttentionLayers.Select(l => l.Index));
        Assert.Equal((ulong)spec.KvBytesPerToken, info.KvBytesPerToken);
        Assert.Equal(4ul * 2 * 2 * 64 * sizeof(float), info.KvBytesPerToken);
    }

    private async Task AssertEngineIdleAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((Server.Scheduler.UsedBlocks > 0 || Server.Scheduler.ActiveRequests > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, Server.Scheduler.UsedBlocks);
        Assert.Equal(0, Server.Scheduler.ActiveRequests);
    }
}
