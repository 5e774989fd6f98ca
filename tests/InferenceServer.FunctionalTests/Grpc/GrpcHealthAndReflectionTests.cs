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

    [Fact]
    public async Task UnknownMethod_IsUnimplemented_NotTheHttpFallback()
    {
        var method = new Method<HealthCheckRequest, HealthCheckResponse>(MethodType.Unary, "inference.v1.Inference", "NoSuchMethod", Marshallers.Create(r => Google.Protobuf.MessageExtensions.ToByteArray(r), HealthCheckRequest.Parser.ParseFrom), Marshallers.Create(r => Google.Protobuf.MessageExtensions.ToByteArray(r), HealthCheckResponse.Parser.ParseFrom));
        var invoker = fixture.Server.GrpcChannel!.CreateCallInvoker();
        var ex = await Assert.ThrowsAsync<RpcException>(() => invoker.AsyncUnaryCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30)), new HealthCheckRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
    }
}
