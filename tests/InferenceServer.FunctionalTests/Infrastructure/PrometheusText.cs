using System.Globalization;
using System.Text.RegularExpressions;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>A parsed Prometheus text exposition: samples by name and labels, and the families' TYPE lines.</summary>
internal sealed partial class PrometheusText
{
    private PrometheusText(List<Sample> samples, Dictionary<string, string> types)
    {
        Samples = samples;
        Types = types;
    }

    public List<Sample> Samples { get; }

    public Dictionary<string, string> Types { get; }

    public static PrometheusText Parse(string text)
    {
        var samples = new List<Sample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.True(types.TryAdd(parts[2], parts[3]), $"duplicate TYPE for {parts[2]}");
                continue;
            }

            if (line.StartsWith('#'))
            {
                continue;
            }

            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a Prometheus sample line: {line}");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match label in LabelPair().Matches(match.Groups["labels"].Value))
            {
                labels[label.Groups["key"].Value] = label.Groups["value"].Value;
            }

            var value = match.Groups["value"].Value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples.Add(new Sample(match.Groups["name"].Value, labels, value));
        }

        return new PrometheusText(samples, types);
    }

    /// <summary>Samples named <paramref name="name"/> whose labels include <paramref name="model"/> as <c>model_name</c>.</summary>
    public IEnumerable<Sample> For(string name, string model)
        => Samples.Where(s => s.Name == name && s.Labels.TryGetValue("model_name", out var m) && m == model);

    /// <summary>The sum over label sets of <paramref name="name"/> for <paramref name="model"/>; fails when absent.</summary>
    public double Sum(string name, string model)
    {
        var matching = For(name, model).ToList();
        Assert.True(matching.Count > 0, $"{name}{{model_name=\"{model}\"}} is not in the scrape");
        return matching.Sum(s => s.Value);
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<key>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();

    public sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);
}
