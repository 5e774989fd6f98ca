using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>A full request queue is RESOURCE_EXHAUSTED, and the choices already queued are freed.</summary>
public sealed class GrpcQueueFullTests(OneSlotQueueServer fixture) : IClassFixture<OneSlotQueueServer>
{
    [Fact]
    public async Task FullQueue_IsResourceExhausted_AndLeavesNothingBehind()
    {
        // n = 16 choices submitted back to back into a one-request queue: the loop cannot take each before the next.
        var request = new GenerateRequest
        {
            Text = "def main():\n",
            Sampling = new SamplingParameters { Temperature = 0, N = 16 },
            Stop = new StopConditions { MaxTokens = 200, IgnoreEos = true },
        };
        RpcException? refused = null;
        for (var attempt = 0; attempt < 20 && refused is null; attempt++)
        {
            try
            {
                await GenerateResult.ReadAsync(fixture.Server.Grpc!, request);
            }
            catch (RpcException ex)
            {
                refused = ex;
            }
        }

        Assert.NotNull(refused);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("queue is full", refused.Status.Detail);

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((fixture.Server.Scheduler.UsedBlocks > 0 || fixture.Server.Scheduler.ActiveRequests > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, fixture.Server.Scheduler.ActiveRequests);
        Assert.Equal(0, fixture.Server.Scheduler.UsedBlocks);
    }
}
