namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>Locates the repository's models and fixtures from the test binary.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string DefaultModel => Path.Combine(Root, "models", "tiny-pycoder");

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", name);

    /// <summary>A copy of fixture <paramref name="name"/>'s checkpoint alone (config, generation config, safetensors; no graph) in <paramref name="work"/>, made once.</summary>
    public static string CheckpointCopy(string name, string work)
    {
        var folder = Path.Combine(work, name);
        if (!Directory.Exists(folder))
        {
            Directory.CreateDirectory(folder);
            foreach (var file in (string[])["config.json", "generation_config.json", "model.safetensors"])
            {
                File.Copy(Path.Combine(Fixture(name), file), Path.Combine(folder, file));
            }
        }

        return folder;
    }

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
