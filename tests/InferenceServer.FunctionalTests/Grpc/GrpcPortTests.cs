using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// The gRPC port on the default model, without a client library where the point is the bytes: it serves only gRPC
/// (the OpenAI API and probes over h2c are 404), checks frames (oversized, compressed garbage, gzip bombs, a second
/// message) with client-error statuses, honours a raw <c>grpc-timeout</c>, answers with one <c>x-request-id</c> (the
/// caller's when given) and scopes client-chosen ids to the connection.
/// </summary>
public sealed class GrpcPortTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private const string Tokenize = "/inference.v1.Inference/Tokenize";

    private const string Generate = "/inference.v1.Inference/Generate";

    private TestServer Server => fixture.Server;

    private Inference.InferenceClient Client => Server.Grpc!;

    private static GenerateRequest Long(string? id = null) => new()
    {
        RequestId = id ?? string.Empty,
        Text = "def main():\n",
        Sampling = new SamplingParameters { Temperature = 0 },
        Stop = new StopConditions { MaxTokens = 2000, IgnoreEos = true },
    };

    [Theory]
    [InlineData("GET", "/v1/models")]
    [InlineData("GET", "/V1/models")]
    [InlineData("POST", "/v1/completions")]
    [InlineData("POST", "/v1/chat/completions")]
    [InlineData("POST", "/tokenize")]
    [InlineData("GET", "/health/ready")]
    [InlineData("GET", "/metrics")]
    [InlineData("GET", "/")]
    public async Task HttpApiOverH2c_OnTheGrpcPort_Is404(string method, string path)
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        if (method == "POST")
        {
            request.Content = new StringContent("""{"model":"tiny-pycoder","prompt":"x","max_tokens":1,"messages":[{"role":"user","content":"x"}]}""", System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("only gRPC", await response.Content.ReadAsStringAsync());

        // The HTTP port still serves it.
        if (path == "/v1/models")
        {
            using var served = await Server.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
    }

    [Theory]
    [InlineData(0xFFFFFFFFu)]
    [InlineData(0x80000000u)]
    [InlineData(4u * 1024 * 1024 + 1)]
    public async Task OversizedLengthPrefix_IsResourceExhausted(uint length)
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        foreach (var path in (string[])[Generate, Tokenize])
        {
            var result = await RawGrpc.CallAsync(http, path, RawGrpc.Frame([0x1A, 0x01, 0x78], length: length));
            Assert.Equal("8", result.GrpcStatus);
            Assert.Contains("--grpc-max-message-size", result.GrpcMessage);
        }
    }

    [Fact]
    public async Task MessageOverTheLimit_FromAClientLibrary_IsResourceExhausted()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => Client.TokenizeAsync(new TokenizeRequest { Text = new string('x', 4 * 1024 * 1024 + 10) }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    public static TheoryData<string, byte[], string, string> BadFrames => new()
    {
        { Generate, RawGrpc.Frame([0x1F, 0x8B, 0x08, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02], flag: 1), "gzip", "3" },
        { Tokenize, RawGrpc.Frame([.. "not gzip at all"u8], flag: 1), "gzip", "3" },
        { Tokenize, RawGrpc.Frame([0x78, 0x9C, 0xFF, 0xFF], flag: 1), "deflate", "3" },
        { Tokenize, RawGrpc.Frame(new TokenizeRequest { Text = "x" }.ToByteArray(), flag: 1), "", "3" },
        { Tokenize, RawGrpc.Frame(new TokenizeRequest { Text = "x" }.ToByteArray(), flag: 1), "snappy", "12" },
        { Tokenize, RawGrpc.Frame(new TokenizeRequest { Text = "x" }.ToByteArray(), flag: 7), "", "3" },
        { Tokenize, RawGrpc.Frame([0x0A, 0x05, 0x61]), "", "3" },
        { Tokenize, RawGrpc.Frame([0xFF, 0xFF, 0xFF]), "", "3" },
        { Tokenize, [.. RawGrpc.Frame(new TokenizeRequest { Text = "x" }.ToByteArray()), .. RawGrpc.Frame(new TokenizeRequest { Text = "y" }.ToByteArray())], "", "3" },
        { Tokenize, [0, 0], "", "3" },
        { "/inference.v1.Inference/GetModelInfo", RawGrpc.Frame([0x0A, 0x02, 0xC3, 0x28]), "", "3" },
        { "/grpc.health.v1.Health/Check", RawGrpc.Frame([0x0A, 0x09]), "", "3" },
    };

    [Theory]
    [MemberData(nameof(BadFrames))]
    public async Task BadFrames_AreClientErrors_NotUnknown(string path, byte[] body, string encoding, string expected)
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var result = await RawGrpc.CallAsync(http, path, body, encoding.Length > 0 ? [("grpc-encoding", encoding)] : []);
        Assert.Equal(expected, result.GrpcStatus);
        Assert.False(string.IsNullOrWhiteSpace(result.GrpcMessage));

        // The port still serves.
        Assert.NotEmpty((await Client.TokenizeAsync(new TokenizeRequest { Text = "x" })).TokenIds);
    }

    [Fact]
    public async Task GzipFrames_AreServed_AndAGzipBombIsResourceExhausted()
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var message = new TokenizeRequest { Text = "def f(x):\n    return x" }.ToByteArray();
        var ok = await RawGrpc.CallAsync(http, Tokenize, RawGrpc.Frame(RawGrpc.Gzip(message), flag: 1), ("grpc-encoding", "gzip"));
        Assert.Equal("0", ok.GrpcStatus);
        var expected = (await Client.TokenizeAsync(new TokenizeRequest { Text = "def f(x):\n    return x" })).TokenIds;
        Assert.Equal(expected, TokenizeResponse.Parser.ParseFrom(ok.Body.AsSpan(5)).TokenIds);

        // 64 MiB of one byte inflates past the 4 MiB limit from a few KiB on the wire.
        var bomb = RawGrpc.Gzip(new byte[64 * 1024 * 1024]);
        var refused = await RawGrpc.CallAsync(http, Tokenize, RawGrpc.Frame(bomb, flag: 1), ("grpc-encoding", "gzip"));
        Assert.Equal("8", refused.GrpcStatus);
        Assert.Contains("inflates", refused.GrpcMessage);
    }

    [Fact]
    public async Task RawGrpcTimeoutHeader_IsHonouredAsADeadline()
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var result = await RawGrpc.CallAsync(http, Generate, RawGrpc.Frame(Long().ToByteArray()), ("grpc-timeout", "300m"));
        Assert.Equal("4", result.GrpcStatus);
        await Eventually.TrueAsync(() => Server.Scheduler.ActiveRequests == 0 && Server.Scheduler.UsedBlocks == 0 && Server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    [Fact]
    public async Task RawGrpcTimeoutHeader_BoundsAStalledRequestMessage()
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var content = new StalledContent(RawGrpc.Frame(new byte[10], length: 100)[..8]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, Generate) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = content };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.TryAddWithoutValidation("grpc-timeout", "300m");
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("4", response.Headers.GetValues("grpc-status").Single());
        }
        finally
        {
            content.Release();
        }
    }

    [Fact]
    public async Task XRequestIdMetadata_IsTheOneResponseId_AndAbortsTheCall()
    {
        var id = "client-" + Guid.NewGuid().ToString("N");
        using var call = Client.Generate(Long(), new Metadata { { "x-request-id", id } }, DateTime.UtcNow.AddSeconds(60));
        var headers = await call.ResponseHeadersAsync;
        Assert.Equal([id], headers.Where(h => h.Key == "x-request-id").Select(h => h.Value));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(id, call.ResponseStream.Current.RequestId);

        await Client.AbortAsync(new AbortRequest { RequestId = id });
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
    }

    [Fact]
    public async Task ResponseCarriesOneRequestId_OverTheWire()
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var request = new GenerateRequest { Text = "x = ", Stop = new StopConditions { MaxTokens = 2 } };
        var generated = await RawGrpc.CallAsync(http, Generate, RawGrpc.Frame(request.ToByteArray()));
        Assert.Equal("0", generated.GrpcStatus);
        var single = Assert.Single(generated.Headers.GetValues("x-request-id"));
        Assert.Matches("^gen-[0-9a-f]{32}$", single);

        var named = await RawGrpc.CallAsync(http, Generate, RawGrpc.Frame(request.ToByteArray()), ("x-request-id", "mine-1"));
        Assert.Equal("mine-1", Assert.Single(named.Headers.GetValues("x-request-id")));

        // Unusable ids (spaces, too long) are replaced, as on the HTTP API; request_id wins over the metadata.
        var spaced = await RawGrpc.CallAsync(http, Generate, RawGrpc.Frame(request.ToByteArray()), ("x-request-id", "has space"));
        Assert.StartsWith("gen-", Assert.Single(spaced.Headers.GetValues("x-request-id")));
        request.RequestId = "field-1";
        var field = await RawGrpc.CallAsync(http, Generate, RawGrpc.Frame(request.ToByteArray()), ("x-request-id", "header-1"));
        Assert.Equal("field-1", Assert.Single(field.Headers.GetValues("x-request-id")));
    }

    [Fact]
    public async Task ClientChosenIds_AreScopedToTheConnection_ServerIssuedIdsAreNot()
    {
        var id = "conn-" + Guid.NewGuid().ToString("N");
        using var call = Client.Generate(Long(id), deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.True(await call.ResponseStream.MoveNext());

        using var otherChannel = GrpcChannel.ForAddress(Server.GrpcAddress!, new GrpcChannelOptions { MaxRetryAttempts = 0 });
        var other = new Inference.InferenceClient(otherChannel);
        var notFound = await Assert.ThrowsAsync<RpcException>(() => other.AbortAsync(new AbortRequest { RequestId = id }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        var same = await GenerateResult.ReadAsync(other, new GenerateRequest { RequestId = id, Text = "x = ", Stop = new StopConditions { MaxTokens = 2 } });
        Assert.Equal(id, same.HeaderRequestId);

        // The first connection still can; a server-issued id, from any connection.
        await Client.AbortAsync(new AbortRequest { RequestId = id });
        await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        using var issued = Client.Generate(Long(), deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.True(await issued.ResponseStream.MoveNext());
        await other.AbortAsync(new AbortRequest { RequestId = issued.ResponseStream.Current.RequestId });
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await issued.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        await Eventually.TrueAsync(() => Server.Scheduler.ActiveRequests == 0 && Server.Scheduler.UsedBlocks == 0, "idle engine");
    }
}
