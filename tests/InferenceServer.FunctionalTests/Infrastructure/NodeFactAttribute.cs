namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>A fact that is skipped, saying why, when Node.js is not installed; it runs everywhere else.</summary>
public sealed class NodeFactAttribute : FactAttribute
{
    public NodeFactAttribute()
    {
        if (ExternalTools.Find("node") is null)
        {
            Skip = "Node.js (node) is not on PATH; install Node.js 18+ to check that the proto loads with @grpc/proto-loader.";
        }
    }
}
