using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>The standard health protocol (SERVING while ready, NOT_SERVING while draining) and server reflection, over real channels.</summary>
public sealed class GrpcHealthAndReflectionTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    [Theory]
    [InlineData("")]
    [InlineData("inference.v1.Inference")]
    public async Task Check_IsServing_WhenReady(string service)
    {
        var health = new Health.HealthClient(fixture.Server.GrpcChannel);
        var response = await health.CheckAsync(new HealthCheckRequest { Service = service });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task Check_UnknownService_IsNotFound()
    {
        var health = new Health.HealthClient(fixture.Server.GrpcChannel);
        var ex = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task Reflection_ListsTheServices_AndServesTheProto()
    {
        var reflection = new ServerReflection.ServerReflectionClient(fixture.Server.GrpcChannel);
        using var call = reflection.ServerReflectionInfo(deadline: DateTime.UtcNow.AddSeconds(30));
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        Assert.True(await call.ResponseStream.MoveNext());
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("inference.v1.Inference", names);
        Assert.Contains("grpc.health.v1.Health", names);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "inference.v1.Inference" });
        Assert.True(await call.ResponseStream.MoveNext());
        var bytes = Assert.Single(call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto);
        var file = Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(bytes);
        Assert.Equal("inference.v1", file.Package);
        var service = Assert.Single(file.Service);
        Assert.Equal(["Generate", "Abort", "Tokenize", "Detokenize", "ListModels", "GetModelInfo"], service.Method.Select(m => m.Name));
        await call.RequestStream.CompleteAsync();
    }
}

/// <summary>Health transitions on a server of its own: draining turns gRPC health and HTTP readiness to "not serving" and refuses new work.</summary>
public sealed class GrpcDrainingTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(RepositoryPaths.DefaultModel);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Draining_FlipsWatchToNotServing_AndRefusesNewRequests()
    {
        var health = new Health.HealthClient(_server.GrpcChannel);
        using var watch = health.Watch(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);

        _server.Services.GetRequiredService<ServingState>().BeginDraining();

        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, watch.ResponseStream.Current.Status);
        Assert.False(await watch.ResponseStream.MoveNext());

        var check = await health.CheckAsync(new HealthCheckRequest { Service = "inference.v1.Inference" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, check.Status);

        using var ready = await _server.Http.GetAsync("/health/ready");
        Assert.Equal(503, (int)ready.StatusCode);
        Assert.Equal("draining", await ready.Content.ReadAsStringAsync());

        var ex = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(_server.Grpc!, new InferenceServer.Grpc.V1.GenerateRequest { Text = "x" }));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Contains("draining", ex.Status.Detail);
    }

    [Fact]
    public async Task Stopping_TheHost_SendsNotServing()
    {
        var health = new Health.HealthClient(_server.GrpcChannel);
        using var watch = health.Watch(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);

        var app = _server.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>();
        app.StopApplication();

        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, watch.ResponseStream.Current.Status);
    }
}
