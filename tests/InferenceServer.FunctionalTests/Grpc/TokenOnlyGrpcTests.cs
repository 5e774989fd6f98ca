using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>A model without a tokenizer over gRPC: token ids work and match Hugging Face; text and the tokenizer calls say why not.</summary>
public sealed class TokenOnlyGrpcTests(LlamaGqaServer fixture) : IClassFixture<LlamaGqaServer>
{
    [Fact]
    public async Task Greedy_MatchesReference_AndHttp()
    {
        foreach (var reference in ReferenceCase.Load(fixture.Model))
        {
            var request = new GenerateRequest
            {
                TokenIds = new TokenIds { Ids = { reference.Prompt.Select(i => (uint)i) } },
                Sampling = new SamplingParameters { Temperature = 0 },
                Stop = new StopConditions { MaxTokens = (uint)reference.Greedy.Length, IgnoreEos = true },
            };
            var result = await GenerateResult.ReadAsync(fixture.Server.Grpc!, request);
            Assert.Equal(reference.Greedy.Select(i => (uint)i), result.TokenIds[0]);
            Assert.Equal(FinishReason.Length, result.Completes[0].FinishReason);
        }
    }

    [Fact]
    public async Task Text_IsInvalidArgument_AndTokenizerCallsFailedPrecondition()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(fixture.Server.Grpc!, new GenerateRequest { Text = "hello" }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.StartsWith("text: ", ex.Status.Detail);
        Assert.Contains("tokenizer", ex.Status.Detail);

        ex = await Assert.ThrowsAsync<RpcException>(() => fixture.Server.Grpc!.TokenizeAsync(new TokenizeRequest { Text = "hello" }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        ex = await Assert.ThrowsAsync<RpcException>(() => fixture.Server.Grpc!.DetokenizeAsync(new DetokenizeRequest { TokenIds = { 1u } }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        var info = await fixture.Server.Grpc!.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.False(info.HasTokenizer);
    }
}
