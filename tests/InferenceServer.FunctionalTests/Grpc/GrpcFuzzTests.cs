using CsCheck;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// Property, as <see cref="HttpFuzzTests"/> for gRPC: adversarial <c>Generate</c> requests (NaN and infinite floats, huge
/// and zero counts, ids out of range, empty and huge prompts, <c>n</c> and <c>top_logprobs</c> at and past their limits,
/// odd request ids) and raw bytes that are not a valid message (random, truncated, invalid UTF-8 in strings, wrong wire
/// types) end in a valid stream or a client-error status (INVALID_ARGUMENT, NOT_FOUND, ...): never INTERNAL, UNKNOWN,
/// UNAVAILABLE or a hang; afterwards a normal request gets the same answer as before and the engine is idle.
/// <c>FUZZ_ITERATIONS</c> sets the number of requests (default 600).
/// </summary>
public sealed class GrpcFuzzTests(FuzzServer fixture, ITestOutputHelper output) : IClassFixture<FuzzServer>
{
    private static readonly Method<byte[], byte[]> RawGenerate = new(
        MethodType.ServerStreaming,
        "inference.v1.Inference",
        "Generate",
        Marshallers.Create(static b => b, static b => b),
        Marshallers.Create(static b => b, static b => b));

    private static readonly StatusCode[] ClientErrors =
    [
        StatusCode.InvalidArgument, StatusCode.NotFound, StatusCode.OutOfRange, StatusCode.FailedPrecondition,
        StatusCode.AlreadyExists, StatusCode.ResourceExhausted,
    ];

    private static Gen<T> Mostly<T>(T[] valid, T[] hostile) => Gen.Frequency((14, Gen.OneOf(valid)), (1, Gen.OneOf(hostile)));

    private static readonly double[] HostileDoubles = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -1, -1e308, 1e308, 3, double.Epsilon, -0.0];

    internal static readonly Gen<GenerateRequest> Typed =
        Gen.Select(
            Gen.Select(
                Mostly(["", "tiny-pycoder"], ["other", new string('m', 10_000), "\u0000"]),
                Mostly(["", "id-1"], [new string('r', 5000), "a b", "\ud83d\ude00", "\n"]),
                Gen.Int[0, 3],
                Mostly(["def f():", "x = 1", "<|endoftext|>"], ["", new string('y', 30_000), "\u0000\u0001"]),
                Mostly([new uint[] { 1, 2, 3 }], [[], [uint.MaxValue], [49152], [0], [.. Enumerable.Range(0, 2100).Select(i => (uint)i)]])),
            Gen.Select(
                Mostly([0.0, 0.7, 1.0], HostileDoubles),
                Mostly([1.0, 0.5], HostileDoubles),
                Mostly([0, 40, -1], [int.MinValue, int.MaxValue, -2, 49153]),
                Mostly([0.0, 0.1], HostileDoubles),
                Mostly([0.0, 1.5], HostileDoubles),
                Mostly([1.0, 1.2], HostileDoubles)),
            Gen.Select(
                Mostly([1u, 2u, 16u], [0u, 17u, uint.MaxValue]),
                Gen.Bool,
                Mostly([0u, 5u, 20u], [21u, uint.MaxValue]),
                Mostly([new Dictionary<uint, float>(), new() { [5] = 10 }], [new() { [uint.MaxValue] = 1 }, new() { [5] = float.NaN }, new() { [5] = float.PositiveInfinity }, new() { [49152] = 1 }]),
                Mostly([0L, 7L], [long.MinValue, long.MaxValue])),
            Gen.Select(
                Mostly([1u, 4u, 8u], [0u, 2048u, 2049u, uint.MaxValue]),
                Mostly([0u, 2u], [9u, uint.MaxValue]),
                Mostly([Array.Empty<string>(), ["\n"]], [[""], [.. Enumerable.Repeat("a", 17)], [new string('s', 10_000)]]),
                Mostly([Array.Empty<uint>(), [0u]], [[uint.MaxValue], [49152u]]),
                Gen.Bool,
                Mostly([0, 1], [int.MinValue, int.MaxValue])),
            static (input, sampling, counts, stop) =>
            {
                var (model, requestId, inputKind, text, ids) = input;
                var request = new GenerateRequest { Model = model, RequestId = requestId == "id-1" ? Guid.NewGuid().ToString("N") : requestId, Priority = stop.Item6 };
                if (inputKind == 1)
                {
                    request.TokenIds = new TokenIds { Ids = { ids } };
                }
                else if (inputKind > 1)
                {
                    request.Text = text;
                }

                var s = new SamplingParameters
                {
                    Temperature = sampling.Item1,
                    TopP = sampling.Item2,
                    TopK = sampling.Item3,
                    MinP = sampling.Item4,
                    PresencePenalty = sampling.Item5,
                    FrequencyPenalty = sampling.Item5 / 2,
                    RepetitionPenalty = sampling.Item6,
                    N = counts.Item1,
                    Logprobs = counts.Item2,
                    TopLogprobs = counts.Item3,
                    Seed = counts.Item5,
                };
                s.LogitBias.Add(counts.Item4);
                request.Sampling = s;
                request.Stop = new StopConditions { MaxTokens = stop.Item1, MinTokens = stop.Item2, Stop = { stop.Item3 }, StopTokenIds = { stop.Item4 }, IgnoreEos = stop.Item5 };
                return request;
            });

    /// <summary>Raw request bytes: random, or a valid message truncated, bit-flipped or with invalid UTF-8 in its text.</summary>
    private static readonly Gen<byte[]> Raw =
        Gen.Select(Typed, Gen.Int[0, 3], Gen.Int[0, 100_000], Gen.Byte.Array[0, 64])
        .Select(static t =>
        {
            var (request, mode, position, garbage) = t;
            var bytes = request.ToByteArray();
            var at = bytes.Length == 0 ? 0 : position % bytes.Length;
            switch (mode)
            {
                case 0:
                    return garbage;
                case 1:
                    return bytes[..at];
                case 2:
                    if (bytes.Length > 0)
                    {
                        bytes[at] ^= (byte)(1 << (position % 8));
                    }

                    return bytes;
                default:
                    // Field 3 (text), length-delimited, with bytes that are not UTF-8.
                    return [.. bytes, 0x1A, 0x04, 0xC3, 0x28, 0xFF, 0xFE];
            }
        });

    private static readonly Gen<(GenerateRequest? Typed, byte[]? Raw)> Requests =
        Gen.Frequency(
            (3, Typed.Select(static r => ((GenerateRequest?)r, (byte[]?)null))),
            (1, Raw.Select(static b => ((GenerateRequest?)null, (byte[]?)b))));

    [Fact]
    public async Task MalformedAndAdversarialGenerateRequests_AreClientErrorsOrValidStreams_AndTheServerStaysWhole()
    {
        var server = fixture.Server;
        var client = server.Grpc!;
        var normal = new GenerateRequest { Text = "def fibonacci(n):", Sampling = new SamplingParameters { Temperature = 0 }, Stop = new StopConditions { MaxTokens = 8 } };
        var before = await GenerateResult.ReadAsync(client, normal);
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), out var n) ? n : 600;
        var outcomes = new System.Collections.Concurrent.ConcurrentDictionary<StatusCode, int>();
        await Requests.SampleAsync(
            async request =>
            {
                var status = request.Typed is { } typed ? await TypedAsync(client, typed) : await RawAsync(server, request.Raw!);
                outcomes.AddOrUpdate(status, 1, static (_, c) => c + 1);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine,
            print: static r => r.Typed?.ToString() is { } json ? (json.Length > 2000 ? json[..2000] : json) : Convert.ToHexString(r.Raw!));

        output.WriteLine("outcomes: " + string.Join(", ", outcomes.OrderBy(p => p.Key).Select(p => $"{p.Key}x{p.Value}")));
        Assert.True(outcomes.ContainsKey(StatusCode.OK), "no request was valid");
        Assert.True(outcomes.ContainsKey(StatusCode.InvalidArgument), "no request was refused");

        var after = await GenerateResult.ReadAsync(client, normal);
        Assert.Equal(before.Text[0], after.Text[0]);
        await Eventually.TrueAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0 && server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    private static async Task<StatusCode> TypedAsync(Inference.InferenceClient client, GenerateRequest request)
    {
        try
        {
            var result = await GenerateResult.ReadAsync(client, request, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(90)));
            Assert.NotEmpty(result.Completes);
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            Assert.True(ClientErrors.Contains(ex.StatusCode), $"{ex.StatusCode} ({ex.Status.Detail}) for {request}");
            Assert.False(string.IsNullOrWhiteSpace(ex.Status.Detail), $"{ex.StatusCode} without a message for {request}");
            return ex.StatusCode;
        }
    }

    private static async Task<StatusCode> RawAsync(TestServer server, byte[] body)
    {
        var invoker = server.GrpcChannel!.CreateCallInvoker();
        try
        {
            using var call = invoker.AsyncServerStreamingCall(RawGenerate, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(90)), body);
            var completes = 0;
            await foreach (var bytes in call.ResponseStream.ReadAllAsync())
            {
                if (GenerateResponse.Parser.ParseFrom(bytes).Complete is not null)
                {
                    completes++;
                }
            }

            Assert.True(completes > 0, $"a stream without a completion for {Convert.ToHexString(body)}");
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            Assert.True(ClientErrors.Contains(ex.StatusCode), $"{ex.StatusCode} ({ex.Status.Detail}) for {Convert.ToHexString(body)}");
            return ex.StatusCode;
        }
    }
}
