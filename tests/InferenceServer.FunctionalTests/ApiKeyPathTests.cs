using System.Globalization;
using System.Text;
using CsCheck;
using InferenceServer.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>--api-key</c> whatever the path's spelling: case, percent-encoding, doubled slashes, dot segments, trailing dots
/// and slashes. Property: without the key every variant of a protected route is a 401 in OpenAI's envelope (never
/// served, never a 5xx); with the key no variant is a 401 or a 5xx. Paths are sent over a bare socket, exactly as
/// generated (HttpClient would canonicalize them). <c>FUZZ_ITERATIONS</c> sets the count (default 300).
/// </summary>
public sealed class ApiKeyPathTests(ApiKeyServer fixture, ITestOutputHelper output) : IClassFixture<ApiKeyServer>
{
    private const string Key = "sk-one";

    /// <summary>Protected routes: method, path, body.</summary>
    private static readonly (string Method, string Path, string? Body)[] Protected =
    [
        ("GET", "/v1/models", null),
        ("GET", "/v1/models/tiny-pycoder", null),
        ("POST", "/v1/completions", """{"prompt":"def f():","max_tokens":2,"temperature":0}"""),
        ("POST", "/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""),
        ("POST", "/tokenize", """{"prompt":"x"}"""),
        ("POST", "/detokenize", """{"tokens":[5,6]}"""),
        ("GET", "/no/such/route", null),
    ];

    /// <summary>A variant of one protected route: the path rewritten by a seeded mutator.</summary>
    public sealed record Variant(string Method, string Path, string? Body)
    {
        public override string ToString() => $"{Method} {Path}";
    }

    private static readonly Gen<Variant> Variants = Gen.Select(Gen.Int[0, Protected.Length - 1], Gen.Int, static (route, seed) =>
    {
        var (method, path, body) = Protected[route];
        return new Variant(method, Mutate(path, new Random(seed)), body);
    });

    /// <summary>Rewrites <paramref name="path"/> so that a case-insensitive, decoding router may still match it.</summary>
    internal static string Mutate(string path, Random random)
    {
        var text = new StringBuilder();
        foreach (var c in path)
        {
            if (c == '/')
            {
                text.Append(random.Next(5) switch
                {
                    0 => "//",
                    1 => "/./",
                    2 => "/zz/../",
                    _ => "/",
                });
                continue;
            }

            var ch = char.IsLetter(c) && random.Next(2) == 0 ? char.ToUpperInvariant(c) : c;
            if (random.Next(4) == 0)
            {
                var hex = ((int)ch).ToString(random.Next(2) == 0 ? "X2" : "x2", CultureInfo.InvariantCulture);
                text.Append('%').Append(hex);
            }
            else
            {
                text.Append(ch);
            }
        }

        text.Append(random.Next(7) switch
        {
            0 => "/",
            1 => ".",
            2 => "%2e",
            3 => "/.",
            4 => "?x=1",
            _ => string.Empty,
        });
        return text.ToString();
    }

    [Fact]
    public async Task EverySpellingOfAProtectedRoute_NeedsTheKey_AndNeverFails()
    {
        var server = fixture.Server.BaseAddress;
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), out var n) ? Math.Max(50, n / 2) : 300;
        var withKey = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        await Variants.SampleAsync(
            async variant =>
            {
                var refused = await RawHttp.RequestAsync(server, variant.Method, variant.Path, null, variant.Body);
                Assert.True(refused.Status == 401 && refused.Body.Contains("invalid_api_key", StringComparison.Ordinal), $"{variant} without a key: {refused.Status} {refused.Body}");
                var wrong = await RawHttp.RequestAsync(server, variant.Method, variant.Path, "sk-on", variant.Body);
                Assert.Equal(401, wrong.Status);
                var served = await RawHttp.RequestAsync(server, variant.Method, variant.Path, Key, variant.Body);
                Assert.True(served.Status is not 401 and < 500, $"{variant} with the key: {served.Status} {served.Body}");
                withKey.AddOrUpdate(served.Status, 1, static (_, c) => c + 1);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine);

        output.WriteLine("with the key: " + string.Join(", ", withKey.OrderBy(p => p.Key).Select(p => $"{p.Key}x{p.Value}")));

        // Some spellings reach the handlers (so the property covers served routes, not only 404s).
        Assert.True(withKey.ContainsKey(200), "no variant was served with the key");
    }

    [Theory]
    [InlineData("GET", "/V1/models")]
    [InlineData("GET", "/V1/MODELS")]
    [InlineData("POST", "/V1/chat/completions")]
    [InlineData("GET", "/%76%31/models")]
    [InlineData("GET", "//v1/models")]
    [InlineData("GET", "/v1//models")]
    [InlineData("GET", "/v1/./models")]
    [InlineData("GET", "/v1/models.")]
    [InlineData("GET", "/v1/models/")]
    [InlineData("POST", "/TOKENIZE")]
    [InlineData("GET", "/health/live/../../v1/models")]
    public async Task KnownBypasses_Are401(string method, string path)
    {
        var response = await RawHttp.RequestAsync(fixture.Server.BaseAddress, method, path, null, method == "POST" ? """{"prompt":"x","messages":[{"role":"user","content":"x"}]}""" : null);
        Assert.Equal(401, response.Status);
    }

    [Fact]
    public async Task GrpcHealth_NeedsNoKey_AndH2cOpenAiPathsDo()
    {
        // gRPC methods are left to the gRPC service's own key check; health must stay open for probes and balancers.
        var health = new global::Grpc.Health.V1.Health.HealthClient(fixture.Server.GrpcChannel);
        var check = await health.CheckAsync(new global::Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(global::Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, check.Status);

        // The OpenAI paths over HTTP/2 on the gRPC port (h2c) need the key as on the HTTP port.
        using var h2c = new HttpClient { DefaultRequestVersion = System.Net.HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await h2c.GetAsync(new Uri(fixture.Server.GrpcAddress!, "/V1/models"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("tiny-pycoder", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    [InlineData("/HEALTH/Live")]
    [InlineData("/metrics")]
    public async Task ProbesAndMetrics_AreOpen(string path)
        => Assert.Equal(200, (await RawHttp.RequestAsync(fixture.Server.BaseAddress, "GET", path)).Status);
}

/// <summary>A server started with <c>--api-key</c> and <c>--metrics-require-key</c>.</summary>
public sealed class MetricsKeyServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--api-key", "sk-metrics", "--metrics-require-key");

/// <summary><c>--metrics-require-key</c> puts <c>/metrics</c> behind the key; the probes stay open.</summary>
public sealed class MetricsRequireKeyTests(MetricsKeyServer fixture) : IClassFixture<MetricsKeyServer>
{
    [Fact]
    public async Task Metrics_NeedTheKey_ProbesDoNot()
    {
        var server = fixture.Server.BaseAddress;
        Assert.Equal(401, (await RawHttp.RequestAsync(server, "GET", "/metrics")).Status);
        Assert.Equal(401, (await RawHttp.RequestAsync(server, "GET", "/METRICS")).Status);
        var scraped = await RawHttp.RequestAsync(server, "GET", "/metrics", "sk-metrics");
        Assert.Equal(200, scraped.Status);
        Assert.Contains("vllm:", scraped.Body, StringComparison.Ordinal);
        Assert.Equal(200, (await RawHttp.RequestAsync(server, "GET", "/health/ready")).Status);
    }
}
