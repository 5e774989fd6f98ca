using System.Text.RegularExpressions;

namespace InferenceServer.Tests.Architecture;

/// <summary>
/// Keeps the host's folders depending one way (src/InferenceServer/ARCHITECTURE.md): read from the sources under
/// src/InferenceServer, not from the compiled assembly, each top folder is mapped to the host namespaces its files name
/// (<c>using InferenceServer.X</c> and qualified names such as <c>Hosting.ServerLog</c> or
/// <c>InferenceServer.OpenAi.UsageCounter</c>, in code and in doc comments alike), and the allowed directions are checked:
/// the protocols (<c>OpenAi/</c>, <c>Grpc/</c>) do not name each other, the serving layer (<c>Serving/</c>) names no
/// protocol, transport or composition folder, and only the composition root (<c>Hosting/</c>, and <c>Program.cs</c>)
/// names <c>Hosting</c>.
/// </summary>
public sealed partial class FolderDependencyTests
{
    /// <summary>The host's top folders whose namespaces the rules name (a namespace follows its folder).</summary>
    private static readonly string[] HostFolders = ["Cli", "Grpc", "Hosting", "Http", "Observability", "OpenAi", "Serving"];

    /// <summary>Each rule: the folder, and the host folders its files must not name.</summary>
    public static TheoryData<string, string[]> Rules => new()
    {
        { "OpenAi", ["Grpc", "Hosting", "Cli"] },
        { "Grpc", ["OpenAi", "Hosting", "Cli"] },
        { "Serving", ["OpenAi", "Grpc", "Http", "Hosting", "Observability", "Cli"] },
        { "Http", ["Grpc", "Hosting", "Cli"] },
        { "Observability", ["OpenAi", "Grpc", "Hosting", "Cli"] },
        { "Cli", ["OpenAi", "Grpc", "Http", "Hosting", "Serving"] },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void Folder_DoesNotNameForbiddenFolders(string folder, string[] forbidden)
    {
        var root = Path.Combine(RepositoryRoot(), "src", "InferenceServer", folder);
        Assert.True(Directory.Exists(root), $"src/InferenceServer/{folder} does not exist.");
        var found = new List<string>();
        foreach (var file in SourceFiles(root))
        {
            foreach (var (name, line) in NamedFolders(file))
            {
                if (forbidden.Contains(name))
                {
                    found.Add($"{Path.GetRelativePath(RepositoryRoot(), file)}:{line} names {name}");
                }
            }
        }

        Assert.True(found.Count == 0, $"{folder}/ must not depend on {string.Join(", ", forbidden)}:\n" + string.Join("\n", found));
    }

    [Fact]
    public void Hosting_IsNamedOnlyByTheCompositionRoot()
    {
        var source = Path.Combine(RepositoryRoot(), "src", "InferenceServer");
        var found = new List<string>();
        foreach (var file in SourceFiles(source))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith("Hosting" + Path.DirectorySeparatorChar, StringComparison.Ordinal) || relative == "Program.cs")
            {
                continue;
            }

            foreach (var (name, line) in NamedFolders(file))
            {
                if (name == "Hosting")
                {
                    found.Add($"{relative}:{line}");
                }
            }
        }

        Assert.True(found.Count == 0, "Only Hosting/ and Program.cs may name InferenceServer.Hosting:\n" + string.Join("\n", found));
    }

    [Theory]
    [InlineData("OpenAi")]
    [InlineData("Grpc")]
    [InlineData("Http")]
    public void RequestCode_DependsOnTheEngineInterface_WithoutServiceLocation(string folder)
    {
        // The endpoints reach the engine through Serving.IInferenceEngine and get their services by injection; only the
        // composition root (Hosting/) binds the concrete scheduler and resolves services from the container.
        var root = Path.Combine(RepositoryRoot(), "src", "InferenceServer", folder);
        var found = new List<string>();
        foreach (var file in SourceFiles(root))
        {
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].Contains("ContinuousBatchScheduler", StringComparison.Ordinal)
                    || lines[i].Contains("RequestServices.GetService", StringComparison.Ordinal)
                    || lines[i].Contains("RequestServices.GetRequiredService", StringComparison.Ordinal))
                {
                    found.Add($"{Path.GetRelativePath(RepositoryRoot(), file)}:{i + 1}: {lines[i].Trim()}");
                }
            }
        }

        Assert.True(found.Count == 0, $"{folder}/ names the concrete scheduler or locates a service per request:\n" + string.Join("\n", found));
    }

    [Fact]
    public void NamedFolders_FindsUsingsAndQualifiedNames()
    {
        // The scanner itself: a using, a fully qualified name, a partly qualified name and a cref each count; an
        // external namespace that shares a folder's name (Grpc.Core) and a folder's own sub-namespace do not.
        var file = Path.Combine(Path.GetTempPath(), $"folder-dependency-{Guid.NewGuid():N}.cs");
        File.WriteAllLines(file,
        [
            "using InferenceServer.Hosting;",
            "using Grpc.Core;",
            "namespace InferenceServer.Serving;",
            "/// <see cref=\"Http.RequestIdMiddleware\"/>",
            "var a = InferenceServer.OpenAi.UsageCounter.Zero;",
            "var b = Grpc.Core.Status.DefaultSuccess;",
            "var c = global::Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving;",
            "var d = Observability.PrometheusTextExporter.ContentType;",
        ]);
        try
        {
            var names = NamedFolders(file).Select(static n => n.Folder).ToArray();
            Assert.Equal(["Hosting", "Http", "OpenAi", "Observability"], names);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>The host folders one file names, each with its line number.</summary>
    private static IEnumerable<(string Folder, int Line)> NamedFolders(string file)
    {
        var lines = File.ReadAllLines(file);
        for (var i = 0; i < lines.Length; i++)
        {
            var text = lines[i].Trim();
            if (text.StartsWith("namespace ", StringComparison.Ordinal))
            {
                continue;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (Match match in QualifiedName().Matches(text))
            {
                var folder = match.Groups["folder"].Value;
                if (HostFolders.Contains(folder) && !IsExternal(folder, match.Groups["next"].Value, match.Groups["prefix"].Value) && seen.Add(folder))
                {
                    yield return (folder, i + 1);
                }
            }
        }
    }

    /// <summary>
    /// Whether a match is a library namespace that shares a host folder's name: <c>Grpc.Core</c>, <c>Grpc.Net</c>,
    /// <c>Grpc.AspNetCore</c>, <c>Grpc.Health</c>, <c>Grpc.Reflection</c>, or anything written <c>global::Grpc</c>.
    /// </summary>
    private static bool IsExternal(string folder, string next, string prefix)
        => folder == "Grpc" && (prefix == "global::" || next is "Core" or "Net" or "AspNetCore" or "Health" or "Reflection");

    private static IEnumerable<string> SourceFiles(string root)
        => Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(static f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    /// <summary>
    /// A name that starts with a host folder: <c>InferenceServer.X</c> (a using or a qualified name), or <c>X.Next</c>
    /// not preceded by another identifier part (so <c>Foo.Grpc.Bar</c> is not a match, nor a bare word in prose).
    /// </summary>
    [GeneratedRegex(@"(?<prefix>InferenceServer\.)(?<folder>[A-Z]\w*)(?:\.(?<next>[A-Z]\w*))?|(?<prefix>global::|(?<![\w.]))(?<folder>[A-Z]\w*)\.(?<next>[A-Z]\w*)")]
    private static partial Regex QualifiedName();

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "InferenceServer.sln")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException("InferenceServer.sln not found above " + AppContext.BaseDirectory);
    }
}
