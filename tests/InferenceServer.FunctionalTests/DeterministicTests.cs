using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>--deterministic</c> on the CPU (the real executable): the flag parses, the startup log says what it does here, and
/// the default model still gives its reference greedy tokens, every case sent at once.
/// </summary>
public sealed class DeterministicTests
{
    [Fact]
    public async Task Deterministic_ShowsInTheStartupLog_AndServesTheReferenceTokens()
    {
        await using var server = await ServerProcess.StartAsync("--deterministic");
        var note = Assert.Single(server.Events, e => e.GetProperty("@m").GetString()!.StartsWith("--deterministic:", StringComparison.Ordinal));
        Assert.Contains("prefix caching is off", note.GetProperty("@m").GetString(), StringComparison.Ordinal);

        var cases = ReferenceCase.Load(RepositoryPaths.DefaultModel);
        var responses = await Task.WhenAll(cases.Select(async reference =>
        {
            using var content = new StringContent(
                $$"""{"prompt":[{{string.Join(",", reference.Prompt)}}],"max_tokens":{{reference.Greedy.Length}},"temperature":0,"ignore_eos":true,"return_token_ids":true}""",
                System.Text.Encoding.UTF8,
                "application/json");
            using var response = await server.Http.PostAsync("/v1/completions", content).WaitAsync(TimeSpan.FromSeconds(120));
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        }));
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Greedy, responses[i].GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
        }
    }
}
