// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Tests;

/// <summary>
/// A theory that skips, naming what is missing and how it is made, until every fixture it names has a
/// <c>reference.json</c> under <c>tests/fixtures</c>: for fixtures made on the GPU machine (issue 18's
/// <c>bench/gpu/mla/make_fixtures.py</c>) and committed afterwards.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class FixtureTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips unless each of <paramref name="fixtures"/> exists.</summary>
    public FixtureTheoryAttribute(params string[] fixtures)
    {
        var missing = fixtures.Where(f => !File.Exists(Path.Combine(BuiltModels.Fixture(f), "reference.json"))).ToArray();
        if (missing.Length > 0)
        {
            Skip = $"tests/fixtures/{string.Join(", ", missing)} not there yet: made on the GPU machine by bench/gpu/mla/make_fixtures.py";
        }
    }
}
