using System.Collections.Concurrent;
using CsCheck;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// Property, as <see cref="GrpcFuzzTests"/> under <c>--api-key</c>: every method, with missing, wrong, near-miss and
/// valid keys, typed requests full of integer-overflow values, and hand-made frames whose length prefix, compressed-flag
/// and encoding are hostile (0xFFFFFFFF, 2^31, just past the 64 KiB limit). A call without a valid key is always
/// UNAUTHENTICATED; with one, a valid answer or a client-error status; never INTERNAL, UNKNOWN or a hang, and the
/// server serves normally afterwards with an idle engine. <c>FUZZ_ITERATIONS</c> sets the number of calls (default 400).
/// </summary>
public sealed class GrpcAuthFuzzTests(GrpcApiKeyServer fixture, ITestOutputHelper output) : IClassFixture<GrpcApiKeyServer>
{
    private static readonly string?[] Authorizations =
    [
        null, "", "Bearer", "Bearer ", "Bearer wrong", "bearer sk-grpc-one-", "Bearer sk-grpc-on", "Bearer SK-GRPC-ONE",
        "Basic sk-grpc-one", "Bearer sk-grpc-one\u0001", "Bearer " + new string('k', 8000),
        "Bearer " + GrpcApiKeyServer.KeyOne, "bearer " + GrpcApiKeyServer.KeyTwo, "Bearer  " + GrpcApiKeyServer.KeyTwo + "  ",
    ];

    private static readonly StatusCode[] ClientErrors =
    [
        StatusCode.InvalidArgument, StatusCode.NotFound, StatusCode.OutOfRange, StatusCode.FailedPrecondition,
        StatusCode.AlreadyExists, StatusCode.ResourceExhausted, StatusCode.Unimplemented,
    ];

    private static readonly uint[] HostileLengths = [0, 1, 3, 65535, 65536, 65537, int.MaxValue, 0x80000000, uint.MaxValue];

    private static readonly string[] Methods = ["Generate", "Tokenize", "Detokenize", "ListModels", "GetModelInfo", "Abort"];

    private static readonly Gen<IMessage> Messages = Gen.Frequency(
        (4, GrpcFuzzTests.Typed.Select(static r => (IMessage)r)),
        (1, Gen.Select(Gen.String, Gen.Bool).Select(static t => (IMessage)new TokenizeRequest { Text = t.Item1, AddSpecialTokens = t.Item2 })),
        (1, Gen.UInt.Array[0, 8].Select(static ids => (IMessage)new DetokenizeRequest { TokenIds = { ids } })),
        (1, Gen.OneOf(Gen.Const(""), Gen.String, Gen.Const(new string('m', 70_000))).Select(static m => (IMessage)new GetModelInfoRequest { Model = m })),
        (1, Gen.String.Select(static id => (IMessage)new AbortRequest { RequestId = id })));

    private static readonly Gen<(string? Authorization, string Method, IMessage Message, int FrameMode, uint Length, byte Flag, string Encoding)> Calls =
        Gen.Select(
            Gen.OneOf(Authorizations.Select(Gen.Const).ToArray()),
            Gen.OneOf(Methods.Select(Gen.Const).ToArray()),
            Messages,
            Gen.Int[0, 3],
            Gen.OneOf(HostileLengths.Select(Gen.Const).ToArray()),
            Gen.OneOf(Gen.Const((byte)0), Gen.Const((byte)1), Gen.Byte),
            Gen.OneOf(Gen.Const(""), Gen.Const("gzip"), Gen.Const("deflate"), Gen.Const("identity"), Gen.Const("br")));

    [Fact]
    public async Task HostileCallsUnderApiKey_AreUnauthenticatedOrClientErrors_AndTheServerStaysWhole()
    {
        var server = fixture.Server;
        using var http = RawGrpc.CreateClient(server.GrpcAddress!);
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), out var n) ? n : 400;
        var outcomes = new ConcurrentDictionary<string, int>();
        await Calls.SampleAsync(
            async call =>
            {
                var valid = call.Authorization is { } a && (a.Trim().EndsWith(GrpcApiKeyServer.KeyOne, StringComparison.Ordinal) || a.Trim().EndsWith(GrpcApiKeyServer.KeyTwo, StringComparison.Ordinal)) && a.StartsWith("bearer ", StringComparison.OrdinalIgnoreCase);
                var payload = call.Message.ToByteArray();
                // Mode 0: an honest frame; 1: a hostile length prefix; 2: a hostile flag and encoding; 3: gzip with the encoding named.
                var body = call.FrameMode switch
                {
                    0 => RawGrpc.Frame(payload),
                    1 => RawGrpc.Frame(payload, length: call.Length),
                    2 => RawGrpc.Frame(payload, flag: call.Flag),
                    _ => RawGrpc.Frame(RawGrpc.Gzip(payload), flag: 1),
                };
                var headers = new List<(string, string)>();
                if (call.Authorization is { } authorization)
                {
                    headers.Add(("authorization", authorization));
                }

                var encoding = call.FrameMode == 3 ? "gzip" : call.Encoding;
                if (encoding.Length > 0)
                {
                    headers.Add(("grpc-encoding", encoding));
                }

                headers.Add(("grpc-timeout", "60S"));
                var result = await RawGrpc.CallAsync(http, $"/inference.v1.Inference/{call.Method}", body, [.. headers]);
                Assert.True(result.GrpcStatus is not null, $"no grpc-status (HTTP {(int)result.HttpStatus}) for {call}");
                var status = (StatusCode)int.Parse(result.GrpcStatus!, System.Globalization.CultureInfo.InvariantCulture);
                if (!valid)
                {
                    Assert.True(status == StatusCode.Unauthenticated, $"{status} ({result.GrpcMessage}) without a valid key for {call}");
                }
                else
                {
                    Assert.True(status == StatusCode.OK || ClientErrors.Contains(status), $"{status} ({result.GrpcMessage}) for {call}");
                }

                outcomes.AddOrUpdate($"{(valid ? "key" : "no key")}:{status}", 1, static (_, c) => c + 1);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine,
            print: static c => $"{c.Authorization} {c.Method} mode {c.FrameMode} length {c.Length} flag {c.Flag} encoding '{c.Encoding}' {Shorten($"{c.Message}")}");

        output.WriteLine("outcomes: " + string.Join(", ", outcomes.OrderBy(p => p.Key).Select(p => $"{p.Key} x{p.Value}")));
        Assert.Contains(outcomes.Keys, k => k == "key:OK");
        Assert.Contains(outcomes.Keys, k => k == "no key:Unauthenticated");

        var client = server.Grpc!;
        var after = await GenerateResult.ReadAsync(client, new GenerateRequest { Text = "def f():", Stop = new StopConditions { MaxTokens = 4 } }, new CallOptions(GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyOne)));
        Assert.Equal(4u, after.Completes[0].Usage.CompletionTokens);
        await Eventually.TrueAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0 && server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    private static string Shorten(string text) => text.Length > 500 ? text[..500] : text;
}
