using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>The default model with two API keys and a 64 KiB gRPC message limit.</summary>
public sealed class GrpcApiKeyServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--api-key", $"{GrpcApiKeyServer.KeyOne},{GrpcApiKeyServer.KeyTwo}", "--grpc-max-message-size", "65536", "--max-request-timeout", "60")
{
    public const string KeyOne = "sk-grpc-one";

    public const string KeyTwo = "sk-grpc-two-longer";

    public static Metadata Bearer(string key) => new() { { "authorization", "Bearer " + key } };
}

/// <summary>
/// <c>--api-key</c> on the gRPC port: every <c>inference.v1.Inference</c> method needs <c>authorization: Bearer &lt;key&gt;</c>
/// (UNAUTHENTICATED otherwise, whatever the path's letter case), health and reflection stay open, and request ids are
/// scoped to the key: another key can neither abort a request nor learn that its id runs.
/// </summary>
public sealed class GrpcAuthenticationTests(GrpcApiKeyServer fixture) : IClassFixture<GrpcApiKeyServer>
{
    private TestServer Server => fixture.Server;

    private Inference.InferenceClient Client => Server.Grpc!;

    public static TheoryData<string?> BadAuthorizations => new()
    {
        null,
        "Bearer wrong",
        "Bearer ",
        "Basic c2stZ3JwYy1vbmU=",
        "sk-grpc-one",
        "Bearer sk-grpc-one-",
        "Bearer sk-grpc-on",
        "Bearer SK-GRPC-ONE",
    };

    [Theory]
    [MemberData(nameof(BadAuthorizations))]
    public async Task EveryInferenceMethod_WithoutAValidKey_IsUnauthenticated(string? authorization)
    {
        var headers = authorization is null ? new Metadata() : new Metadata { { "authorization", authorization } };
        var calls = new Func<Task>[]
        {
            () => GenerateResult.ReadAsync(Client, new GenerateRequest { Text = "x", Stop = new StopConditions { MaxTokens = 2 } }, new CallOptions(headers)),
            () => Client.TokenizeAsync(new TokenizeRequest { Text = "x" }, headers).ResponseAsync,
            () => Client.DetokenizeAsync(new DetokenizeRequest { TokenIds = { 1 } }, headers).ResponseAsync,
            () => Client.ListModelsAsync(new ListModelsRequest(), headers).ResponseAsync,
            () => Client.GetModelInfoAsync(new GetModelInfoRequest(), headers).ResponseAsync,
            () => Client.AbortAsync(new AbortRequest { RequestId = "x" }, headers).ResponseAsync,
        };
        foreach (var call in calls)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
            Assert.Contains("--api-key", ex.Status.Detail);
        }

        Assert.Equal(0, Server.Scheduler.ActiveRequests + Server.Scheduler.QueuedRequests);
    }

    [Theory]
    [InlineData(GrpcApiKeyServer.KeyOne)]
    [InlineData(GrpcApiKeyServer.KeyTwo)]
    public async Task EitherKey_IsAccepted(string key)
    {
        var models = await Client.ListModelsAsync(new ListModelsRequest(), GrpcApiKeyServer.Bearer(key));
        Assert.Single(models.Models);
        var tokens = await Client.TokenizeAsync(new TokenizeRequest { Text = "def f():" }, new Metadata { { "authorization", "bearer  " + key + " " } });
        Assert.NotEmpty(tokens.TokenIds);
        var result = await GenerateResult.ReadAsync(Client, new GenerateRequest { Text = "def f():", Stop = new StopConditions { MaxTokens = 3 } }, new CallOptions(GrpcApiKeyServer.Bearer(key)));
        Assert.Equal(3u, result.Completes[0].Usage.CompletionTokens);
    }

    [Fact]
    public async Task HealthAndReflection_NeedNoKey()
    {
        var health = new Health.HealthClient(Server.GrpcChannel!);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);

        var reflection = new ServerReflection.ServerReflectionClient(Server.GrpcChannel!);
        using var call = reflection.ServerReflectionInfo(deadline: DateTime.UtcNow.AddSeconds(30));
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Contains(call.ResponseStream.Current.ListServicesResponse.Service, s => s.Name == "inference.v1.Inference");
    }

    [Theory]
    [InlineData("/INFERENCE.V1.INFERENCE/Tokenize")]
    [InlineData("/inference.v1.inference/tokenize")]
    [InlineData("/inference.v1.Inference/Tokenize")]
    public async Task PathInOtherCase_WithoutKey_IsNotServed(string path)
    {
        using var http = RawGrpc.CreateClient(Server.GrpcAddress!);
        var message = new TokenizeRequest { Text = "x" }.ToByteArray();
        var result = await RawGrpc.CallAsync(http, path, RawGrpc.Frame(message));
        Assert.True(result.GrpcStatus is "16" or "12", $"grpc-status {result.GrpcStatus} ({result.GrpcMessage}) for {path}");

        // A health path in other letters does not open the API either.
        result = await RawGrpc.CallAsync(http, "/GRPC.HEALTH.V1.HEALTH/Check", RawGrpc.Frame(new HealthCheckRequest().ToByteArray()));
        Assert.True(result.GrpcStatus is "0" or "12", $"grpc-status {result.GrpcStatus} ({result.GrpcMessage})");
    }

    [Fact]
    public async Task RequestIds_AreScopedToTheKey()
    {
        var one = GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyOne);
        var two = GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyTwo);
        var id = "shared-id-" + Guid.NewGuid().ToString("N");
        var request = new GenerateRequest { RequestId = id, Text = "def main():\n", Sampling = new SamplingParameters { Temperature = 0 }, Stop = new StopConditions { MaxTokens = 2000, IgnoreEos = true } };
        using var call = Client.Generate(request, one, DateTime.UtcNow.AddSeconds(60));
        Assert.True(await call.ResponseStream.MoveNext());

        // Another key (on another connection too): its Abort of that id is NOT_FOUND, the same answer as for an id
        // that runs nowhere, and its own call with the same id is not ALREADY_EXISTS.
        using var otherChannel = GrpcChannel.ForAddress(Server.GrpcAddress!, new GrpcChannelOptions { MaxRetryAttempts = 0 });
        var other = new Inference.InferenceClient(otherChannel);
        var notFound = await Assert.ThrowsAsync<RpcException>(() => other.AbortAsync(new AbortRequest { RequestId = id }, two).ResponseAsync);
        var nowhere = await Assert.ThrowsAsync<RpcException>(() => other.AbortAsync(new AbortRequest { RequestId = "runs-nowhere" }, two).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Equal(nowhere.Status.Detail.Replace("runs-nowhere", id, StringComparison.Ordinal), notFound.Status.Detail);
        var same = await GenerateResult.ReadAsync(other, new GenerateRequest { RequestId = id, Text = "x = ", Stop = new StopConditions { MaxTokens = 2 } }, new CallOptions(two));
        Assert.Equal(id, same.HeaderRequestId);

        // The same key aborts it from another connection.
        await other.AbortAsync(new AbortRequest { RequestId = id }, one);
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        await Eventually.TrueAsync(() => Server.Scheduler.ActiveRequests == 0 && Server.Scheduler.UsedBlocks == 0, "idle engine");
    }

    [Fact]
    public async Task ServerIssuedIds_AreScopedToTheKey()
    {
        var request = new GenerateRequest { Text = "def main():\n", Sampling = new SamplingParameters { Temperature = 0 }, Stop = new StopConditions { MaxTokens = 2000, IgnoreEos = true } };
        using var call = Client.Generate(request, GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyOne), DateTime.UtcNow.AddSeconds(60));
        Assert.True(await call.ResponseStream.MoveNext());
        var id = call.ResponseStream.Current.RequestId;
        Assert.StartsWith("gen-", id);

        var ex = await Assert.ThrowsAsync<RpcException>(() => Client.AbortAsync(new AbortRequest { RequestId = id }, GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyTwo)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        await Client.AbortAsync(new AbortRequest { RequestId = id }, GrpcApiKeyServer.Bearer(GrpcApiKeyServer.KeyOne));
        var aborted = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, aborted.StatusCode);
    }
}
