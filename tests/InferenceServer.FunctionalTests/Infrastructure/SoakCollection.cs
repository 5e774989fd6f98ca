namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The soak measures the process's memory, so it runs alone: after the parallel collections, with nothing beside it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoakCollection
{
    public const string Name = "Soak (runs alone)";
}
