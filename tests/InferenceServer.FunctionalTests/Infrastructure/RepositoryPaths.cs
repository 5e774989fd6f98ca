namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>Locates the repository's models and fixtures from the test binary.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string DefaultModel => Path.Combine(Root, "models", "tiny-pycoder");

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", name);

    public static string ChatTemplate(string family) => Path.Combine(Root, "tests", "fixtures", "chat-templates", family + ".jinja");

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "InferenceServer.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("InferenceServer.sln not found above " + AppContext.BaseDirectory);
    }
}
