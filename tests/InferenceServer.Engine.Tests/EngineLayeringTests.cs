using System.Text.RegularExpressions;

namespace InferenceServer.Engine.Tests;

/// <summary>
/// The engine's folders depend one way (issue 20): read the sources of <c>src/InferenceServer.Engine</c> and check which
/// namespaces each folder imports (<c>using</c> directives) or names in full. <c>Scheduling</c> and <c>Diagnostics</c>
/// meet only through <c>Observation</c> (the metrics observe the scheduler through <c>IEngineObserver</c> and
/// <c>IEngineGauges</c>); <c>Observation</c> knows neither.
/// </summary>
public sealed partial class EngineLayeringTests
{
    private const string Engine = "InferenceServer.Engine";

    [Theory]
    [InlineData("Scheduling", "Diagnostics")]
    [InlineData("Diagnostics", "Scheduling")]
    [InlineData("Observation", "Scheduling")]
    [InlineData("Observation", "Diagnostics")]
    [InlineData("KvCache", "Scheduling")]
    public void Folder_DoesNotDependOn(string folder, string forbidden)
    {
        var files = Directory.GetFiles(Path.Combine(EngineSource(), folder), "*.cs", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        var target = $"{Engine}.{forbidden}";
        var offenders = new List<string>();
        foreach (var file in files)
        {
            foreach (var (line, number) in File.ReadLines(file).Select((l, i) => (l, i + 1)))
            {
                var import = UsingDirective().Match(line);
                var imported = import.Success && (import.Groups["ns"].Value == target || import.Groups["ns"].Value.StartsWith(target + ".", StringComparison.Ordinal));
                var qualified = !import.Success && line.Contains(target + ".", StringComparison.Ordinal);
                if (imported || qualified)
                {
                    offenders.Add($"{Path.GetFileName(file)}:{number}: {line.Trim()}");
                }
            }
        }

        Assert.True(offenders.Count == 0, $"{folder} must not depend on {forbidden}:\n{string.Join('\n', offenders)}");
    }

    [Fact]
    public void UsingDirective_Regex_ReadsTheNamespace()
    {
        // The scan would pass vacuously if it read nothing: check it on the forms it must recognise.
        Assert.Equal("InferenceServer.Engine.Diagnostics", UsingDirective().Match("using InferenceServer.Engine.Diagnostics;").Groups["ns"].Value);
        Assert.Equal("InferenceServer.Engine.Diagnostics", UsingDirective().Match("global using static InferenceServer.Engine.Diagnostics;").Groups["ns"].Value);
        Assert.Equal("InferenceServer.Engine.Scheduling", UsingDirective().Match("  using Alias = InferenceServer.Engine.Scheduling;").Groups["ns"].Value);
    }

    private static string EngineSource()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "src", Engine);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"src/{Engine} above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\s*(global\s+)?using\s+(static\s+)?(\w+\s*=\s*)?(?<ns>[\w.]+)\s*;")]
    private static partial Regex UsingDirective();
}
