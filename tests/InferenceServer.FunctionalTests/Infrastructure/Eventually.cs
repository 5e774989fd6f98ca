namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>Waits, bounded, for a condition another thread makes true (the scheduler loop's counters).</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for: {what}");
            await Task.Delay(5);
        }
    }
}
