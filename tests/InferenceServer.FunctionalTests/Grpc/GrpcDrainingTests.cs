using Grpc.Core;
using Grpc.Health.V1;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Hosting;
using InferenceServer.Serving;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.FunctionalTests.Grpc;

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

        _server.Services.GetRequiredService<ServingState>().BeginDrain();

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
