using System.Net;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Testing;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Issue 22 on a real Kestrel host: hostile <c>response_format</c> schemas (deep <c>$ref</c> chains, nested unions, huge
/// <c>const</c>/<c>enum</c>, wide unions) are refused with a 400 naming the limit, or compiled to a correct grammar;
/// never a 5xx, the process lives, readiness stays 200, and another client's request completes meanwhile.
/// </summary>
public sealed class StructuredOutputHardeningTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private const string Other = """{"prompt":"def fibonacci(n):","max_tokens":8,"temperature":0}""";

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private TestServer Server => fixture.Server;

    public static TheoryData<string, string> OverLimit() => new()
    {
        // The stack overflow: a 434 KB body of thousands of chained $refs.
        { "ref-chain-12000", "MaxSchemaBytes" },

        // The 3.9 MB const (400 MB a request before).
        { "const-3900000", "MaxSchemaBytes" },
        { "const-200000", "MaxLiteralBytes" },
        { "enum-15000", "MaxLiteralBytes" },
        { "union-600", "MaxUnionAlternatives" },
        { "nulls-12000", "MaxNodes" },
    };

    private static string Schema(string name)
    {
        string[] parts = name.Split('-');
        int n = int.Parse(parts[^1], System.Globalization.CultureInfo.InvariantCulture);
        return parts[0] switch
        {
            "ref" => HostileSchemas.RefChain(n),
            "const" => HostileSchemas.HugeConst(n),
            "enum" => HostileSchemas.HugeEnum(n),
            "union" => HostileSchemas.WideUnion(n),
            "nulls" => """{"anyOf":[""" + string.Join(",", Enumerable.Repeat("""{"type":"null"}""", n)) + "]}",
            _ => HostileSchemas.NestedUnions(n),
        };
    }

    private static string Request(string schema, int maxTokens = 4)
        => """{"prompt":"config = ","max_tokens":""" + maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture)
            + ""","temperature":0,"response_format":{"type":"json_schema","json_schema":{"name":"h","schema":""" + schema + "}}}";

    // Sends the hostile request and, at the same time, another client's ordinary one; both bounded.
    private async Task<(int Status, JsonElement Body)> SendBesideOtherClientAsync(string body)
    {
        var other = Server.CompleteAsync(Other);
        var hostile = Server.PostRawAsync("/v1/completions", body);
        await Task.WhenAll(other, hostile).WaitAsync(Bound);
        Assert.False(string.IsNullOrEmpty((await other).GetProperty("choices")[0].GetProperty("text").GetString()));
        return await hostile;
    }

    private async Task AssertServerWholeAsync()
    {
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.GetAsync("/health/ready").WaitAsync(Bound)).StatusCode);
        await Server.CompleteAsync(Other).WaitAsync(Bound);
        await Eventually.TrueAsync(() => Server.Scheduler.ActiveRequests == 0 && Server.Scheduler.UsedBlocks == 0, "idle engine");
    }

    [Theory]
    [MemberData(nameof(OverLimit))]
    public async Task SchemaOverALimit_Is400NamingTheLimit(string name, string limit)
    {
        var (status, body) = await SendBesideOtherClientAsync(Request(Schema(name)));
        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("schema_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("response_format.json_schema.schema", error.GetProperty("param").GetString());
        Assert.Contains($"structured-output limit {limit} (", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        await AssertServerWholeAsync();
    }

    [Fact]
    public async Task NestedUnionsOfRefs_GenerateWithoutStallingTheEngine()
    {
        // 6 KB, 40 levels of two-way anyOf over $refs: exponential on the engine thread before, one alternative now.
        var (status, body) = await SendBesideOtherClientAsync(Request(HostileSchemas.NestedUnions(40), maxTokens: 24));
        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        var text = choice.GetProperty("text").GetString()!;
        Assert.StartsWith("{", text.TrimStart(), StringComparison.Ordinal);
        if (choice.GetProperty("finish_reason").GetString() == "stop")
        {
            using var document = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Number, document.RootElement.GetProperty("a").ValueKind);
        }

        await AssertServerWholeAsync();
    }

    [Fact]
    public async Task HundredLinkRefChain_GeneratesItsTarget()
    {
        // Ended in 500 "every token is masked" before (union expansion stopped at 64 levels).
        var (status, body) = await SendBesideOtherClientAsync(Request(HostileSchemas.RefChain(100), maxTokens: 24));
        Assert.Equal(200, status);
        Assert.StartsWith("{", body.GetProperty("choices")[0].GetProperty("text").GetString()!.TrimStart(), StringComparison.Ordinal);
        await AssertServerWholeAsync();
    }

    [Fact]
    public async Task HugeConstRequests_InParallel_CostASmallMultipleOfTheirBodies()
    {
        // Eight 3.9 MB const schemas at once took the process to 6.8 GB before (about 400 MB each).
        string body = Request(HostileSchemas.HugeConst(3_900_000));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var requests = Enumerable.Range(0, 8).Select(_ => Server.PostRawAsync("/v1/completions", body)).ToList();
        var other = Server.CompleteAsync(Other);
        await Task.WhenAll(requests).WaitAsync(Bound);
        await other.WaitAsync(Bound);
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        foreach (var request in requests)
        {
            Assert.Equal(400, (await request).Status);
        }

        // Reading, parsing and refusing costs a few bodies each; the bound leaves room for the rest of the process.
        Assert.True(allocated < 8L * 20 * body.Length, $"8 requests of {body.Length:N0} bytes allocated {allocated:N0}");
        await AssertServerWholeAsync();
    }
}
