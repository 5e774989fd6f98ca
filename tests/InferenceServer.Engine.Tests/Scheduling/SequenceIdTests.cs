using InferenceServer.Engine.Scheduling;

namespace InferenceServer.Engine.Tests.Scheduling;

public sealed class SequenceIdTests
{
    [Fact]
    public void CompareTo_OrdersBySubmission_AndConversionsRoundTrip()
    {
        SequenceId[] ids = [new(3), new(1), new(2)];
        Array.Sort(ids);
        Assert.Equal([(SequenceId)1L, (SequenceId)2L, (SequenceId)3L], ids);
        Assert.Equal(2L, (long)ids[1]);
    }
}
