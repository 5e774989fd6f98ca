namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>A fact about a machine without an NVIDIA driver (no <c>/dev/nvidiactl</c>); skipped, saying why, on a GPU machine.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        if (File.Exists("/dev/nvidiactl"))
        {
            Skip = "This machine has an NVIDIA driver: the check is that --device cuda fails where CUDA is missing.";
        }
    }
}
