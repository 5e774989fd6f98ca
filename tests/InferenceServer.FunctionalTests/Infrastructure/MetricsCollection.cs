namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// Metrics tests compare a server's <c>/metrics</c> with the responses it gave. OpenTelemetry's meter listener selects
/// meters by name process-wide, so another test server running at the same time in this process would add its counts;
/// these tests run alone (a production process has one server).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "Metrics (runs alone)";
}
