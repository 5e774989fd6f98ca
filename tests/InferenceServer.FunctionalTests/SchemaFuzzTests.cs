using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using CsCheck;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Testing;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Property (issue 22): whatever JSON schema a client sends as <c>response_format</c> or as a tool's parameters (deep
/// <c>$ref</c> chains, nested unions, deep nesting, huge <c>const</c>/<c>enum</c>, wide unions, of random sizes), the
/// answer is a 400 in OpenAI's envelope or a valid completion: never a 5xx, never a crash; readiness stays 200, and
/// another client's requests keep completing within a bound meanwhile. <c>SCHEMA_FUZZ_ITERATIONS</c> sets the number
/// of requests (default 60). The gRPC API has no structured output, so there is no gRPC twin.
/// </summary>
public sealed class SchemaFuzzTests(FuzzServer fixture, ITestOutputHelper output) : IClassFixture<FuzzServer>
{
    private const string Reference = """{"prompt":"def fibonacci(n):","max_tokens":4,"temperature":0}""";

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    /// <summary>Hostile schemas of random sizes, from harmless to far past every limit.</summary>
    private static readonly Gen<string> Schemas = Gen.Frequency(
        (3, Gen.Int[1, 20_000].Select(static n => HostileSchemas.RefChain(n))),
        (3, Gen.Int[1, 80].Select(static n => HostileSchemas.NestedUnions(n))),
        (2, Gen.Int[1, 70].Select(static n => HostileSchemas.DeepItems(n))),
        (1, Gen.Int[1, 4_000_000].Select(static n => HostileSchemas.HugeConst(n))),
        (2, Gen.Int[1, 300_000].Select(static n => HostileSchemas.HugeConst(n))),
        (2, Gen.Int[1, 30_000].Select(static n => HostileSchemas.HugeEnum(n))),
        (2, Gen.Int[1, 1_000].Select(static n => HostileSchemas.WideUnion(n))));

    /// <summary>The schema as a completion's or chat's <c>response_format</c>, or as a tool's parameters under <c>tool_choice</c>.</summary>
    private static readonly Gen<HttpFuzzTests.FuzzRequest> Requests = Gen.Select(Schemas, Gen.Int[0, 3]).Select(static t =>
    {
        var (schema, place) = t;
        string format = """{"type":"json_schema","json_schema":{"name":"h","schema":""" + schema + "}}";
        // As the parameters themselves (their $defs move to the root of the tool_choice schema), or as one property.
        string tools = place == 2
            ? """[{"type":"function","function":{"name":"f","parameters":""" + schema + "}}]"
            : """[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"p":""" + schema + "},\"required\":[\"p\"]}}}]";
        (string path, string body) = place switch
        {
            0 => ("/v1/completions", """{"prompt":"x = ","max_tokens":6,"temperature":0,"response_format":""" + format + "}"),
            1 => ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":6,"response_format":""" + format + "}"),
            2 => ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":6,"tool_choice":"required","tools":""" + tools + "}"),
            _ => ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":6,"tool_choice":{"type":"function","function":{"name":"f"}},"tools":""" + tools + "}"),
        };
        return new HttpFuzzTests.FuzzRequest(path, Encoding.UTF8.GetBytes(body), string.Empty);
    });

    [Fact]
    public async Task HostileSchemas_Are400OrValidCompletions_AndOtherClientsAreServed()
    {
        var server = fixture.Server;
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("SCHEMA_FUZZ_ITERATIONS"), out var n) ? n : 60;
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        using var done = new CancellationTokenSource();

        // Another client, all along: each of its requests must complete within the bound.
        var otherClient = Task.Run(async () =>
        {
            int served = 0;
            while (!done.IsCancellationRequested)
            {
                var answer = await server.CompleteAsync(Reference).WaitAsync(Bound);
                Assert.Equal(JsonValueKind.String, answer.GetProperty("choices")[0].GetProperty("text").ValueKind);
                served++;
            }

            return served;
        });

        await Requests.SampleAsync(
            async request =>
            {
                var status = await HttpFuzzTests.SendAndCheckAsync(server.Http, request);
                statuses.AddOrUpdate(status, 1, static (_, c) => c + 1);
                Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/ready").WaitAsync(Bound)).StatusCode);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine);

        await done.CancelAsync();
        int served = await otherClient.WaitAsync(Bound);
        output.WriteLine("statuses: " + string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key}x{p.Value}"))) + $"; other client served {served}");
        Assert.True(statuses.ContainsKey(200), "no schema was accepted: the generator tests only the limits");
        Assert.True(statuses.ContainsKey(400), "no schema was refused: the generator is too tame");
        Assert.True(served > 0);
        await Eventually.TrueAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0 && server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    [Theory]
    [InlineData(54)]
    [InlineData(57)]
    [InlineData(59)]
    public async Task DeepToolParameters_UnderRequired_AreNever5xx(int depth)
    {
        // tool_choice "required" wraps each function's parameters six levels deeper than the request had them.
        string tools = """[{"type":"function","function":{"name":"f","parameters":""" + HostileSchemas.DeepItems(depth) + "}}]";
        string request = """{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":4,"tool_choice":"required","tools":""" + tools + "}";
        var (status, body) = await fixture.Server.PostRawAsync("/v1/chat/completions", request).WaitAsync(Bound);
        Assert.True(status is 200 or 400, $"{status}: {body}");
        Assert.Equal(HttpStatusCode.OK, (await fixture.Server.Http.GetAsync("/health/ready").WaitAsync(Bound)).StatusCode);
    }

    [Fact]
    public async Task ToolSchemaOfNestedUnions_CompilesAndGenerates()
    {
        // Tool-call schemas go through the same compiler as response_format: 30 levels of two-way anyOf over $refs
        // (a billion paths expanded naively) as a tool's parameters. (A tool schema over a size limit is refused
        // earlier here: the chat template renders it into the prompt, past this model's 2,048-token context.)
        string tools = """[{"type":"function","function":{"name":"f","parameters":""" + HostileSchemas.NestedUnions(30) + "}}]";
        string request = """{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":8,"tool_choice":"required","tools":""" + tools + "}";
        var (status, body) = await fixture.Server.PostRawAsync("/v1/chat/completions", request).WaitAsync(Bound);
        Assert.True(status == 200, body.ToString());
        Assert.Equal(HttpStatusCode.OK, (await fixture.Server.Http.GetAsync("/health/ready").WaitAsync(Bound)).StatusCode);
    }
}
