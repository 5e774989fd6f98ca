using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CsCheck;
using InferenceServer.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Property: whatever a client sends to the HTTP API (wrong types, nulls, huge and negative numbers, NaN, unknown fields,
/// deep nesting, huge strings, invalid UTF-8, token ids out of range, empty prompts, <c>n</c> and <c>logprobs</c> at and
/// past their limits, truncated bodies, bad headers), the answer is a 4xx in OpenAI's envelope or a valid completion:
/// never a 5xx, never a hang; and afterwards the server answers a normal request exactly as before, with nothing left in
/// its queue or KV cache. <c>FUZZ_ITERATIONS</c> sets the number of requests (default 600).
/// </summary>
public sealed class HttpFuzzTests(FuzzServer fixture, ITestOutputHelper output) : IClassFixture<FuzzServer>
{
    private const string Reference = """{"prompt":"def fibonacci(n):","max_tokens":8,"temperature":0}""";

    private static readonly string[] Anything =
    [
        "null", "true", "false", "0", "-1", "1", "-0", "0.5", "-0.5", "1e308", "-1e308", "1e999", "-1e999", "4.9e-324",
        "9223372036854775808", "-9223372036854775809", "2147483648", "4294967296", "18446744073709551616", "1.0000000001",
        "\"\"", "\"NaN\"", "\"Infinity\"", "\"-1\"", "\"16\"", "\"true\"", "[]", "{}", "[null]", "[1,2,3]", "{\"a\":1}", "[[]]",
        "\"\\ud800\"", "\"\\u0000\"", "\"<|endoftext|>\"", "\"<|im_start|>\"", "\"\\uffff\\ufffe\"",
        Nest("[", "]", 40), Nest("{\"a\":", "}", 40), Nest("[", "]", 100), "\"" + new string('x', 100_000) + "\"",
        "[" + string.Join(",", Enumerable.Repeat("\"ab\"", 2000)) + "]",
    ];

    private static readonly Dictionary<string, string[]> Completions = new()
    {
        ["model"] = ["\"tiny-pycoder\"", "\"other-model\"", "\"\""],
        ["prompt"] = ["\"def f():\"", "\"\"", "[]", "[\"\"]", "[\"a\",\"b\"]", "[[]]", "[0]", "[-1]", "[50000]", "[2147483647]", "[1,2,\"x\"]", "[[1,2],[3]]", "[[1,-5]]", "[1.5]", "[\"a\",1]", Ids(2047), Ids(2048), Ids(2100), "\"" + new string('y', 20_000) + "\""],
        ["max_tokens"] = ["1", "4", "8", "0", "-1", "2048", "2049", "1e9", "2147483648", "\"8\"", "8.5"],
        ["n"] = ["1", "2", "16", "17", "0", "-1", "100", "1.5", "\"2\""],
        ["logprobs"] = ["0", "1", "20", "21", "-1", "true", "1000", "5.5"],
        ["echo"] = ["true", "false", "1"],
        ["temperature"] = ["0", "1", "2", "2.01", "-0.1", "1e-30", "1e30"],
        ["top_p"] = ["0", "1", "0.5", "1.1", "-1"],
        ["top_k"] = ["-1", "0", "1", "-2", "50000", "40"],
        ["min_p"] = ["0", "1", "1.5", "-0.5"],
        ["stop"] = ["\"\\n\"", "\"\"", "[]", "[\"\"]", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]", "[1]", "\"" + new string('s', 5000) + "\""],
        ["stop_token_ids"] = ["[]", "[0]", "[-1]", "[99999]", "[\"a\"]"],
        ["seed"] = ["0", "-1", "9223372036854775807", "9223372036854775808", "1.5"],
        ["stream"] = ["true", "false", "\"yes\""],
        ["stream_options"] = ["{\"include_usage\":true}", "{\"include_usage\":\"x\"}", "[]", "{\"continuous_usage_stats\":true}"],
        ["logit_bias"] = ["{}", "{\"5\":100}", "{\"5\":101}", "{\"-1\":1}", "{\"99999\":1}", "{\"a\":1}", "{\"5\":\"x\"}", "{\"5\":null}", "[]"],
        ["presence_penalty"] = ["0", "2", "-2", "2.1", "-3"],
        ["frequency_penalty"] = ["0", "2", "-2.5"],
        ["repetition_penalty"] = ["1", "0", "0.01", "10", "11", "-1"],
        ["min_tokens"] = ["0", "2", "100", "-1"],
        ["ignore_eos"] = ["true", "false"],
        ["priority"] = ["0", "-2147483648", "2147483647", "2147483648"],
        ["response_format"] = ["{\"type\":\"text\"}", "{\"type\":\"json_object\"}", "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}", "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"string\",\"pattern\":\"a+\"}}}", "{\"type\":\"json_schema\"}", "{\"type\":\"bogus\"}", "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":" + Nest("{\"type\":\"array\",\"items\":", "}", 30) + "}}"],
        ["timeout"] = ["60", "-1", "0", "\"5\"", "1e300", "NaN"],
        ["best_of"] = ["1", "2", "0"],
        ["suffix"] = ["\"x\"", "null"],
        ["user"] = ["\"u\"", "5"],
        ["skip_special_tokens"] = ["false", "true"],
        ["return_token_ids"] = ["true"],
        ["prompt_logprobs"] = ["0", "1", "20", "21", "-1"],
        ["unknown_field_xyz"] = ["1", "{\"deep\":[1,2,3]}"],
    };

    private static readonly Dictionary<string, string[]> Chat = new()
    {
        ["model"] = Completions["model"],
        ["messages"] = ["[]", "[{\"role\":\"user\",\"content\":\"hi\"}]", "[{\"role\":\"user\",\"content\":\"\"}]", "[{\"role\":\"user\",\"content\":null}]", "[{\"role\":\"bogus\",\"content\":\"x\"}]", "[{\"content\":\"x\"}]", "[{\"role\":\"user\"}]", "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]", "[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]", "[{\"role\":\"user\",\"content\":5}]", "[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]", "[{\"role\":\"tool\",\"content\":\"x\"}]", "{\"role\":\"user\"}", "[null]", "[" + string.Join(",", Enumerable.Repeat("{\"role\":\"user\",\"content\":\"hello there\"}", 400)) + "]"],
        ["max_tokens"] = Completions["max_tokens"],
        ["max_completion_tokens"] = ["1", "8", "0", "-1", "99999"],
        ["n"] = Completions["n"],
        ["logprobs"] = ["true", "false", "1"],
        ["top_logprobs"] = ["0", "20", "21", "-1"],
        ["temperature"] = Completions["temperature"],
        ["stop"] = Completions["stop"],
        ["stream"] = Completions["stream"],
        ["stream_options"] = Completions["stream_options"],
        ["response_format"] = Completions["response_format"],
        ["tools"] = ["[]", "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}}}]", "[{\"type\":\"function\"}]", "[{\"type\":\"retrieval\"}]", "[{\"type\":\"function\",\"function\":{\"name\":\"\"}}]", "{}"],
        ["tool_choice"] = ["\"auto\"", "\"none\"", "\"required\"", "\"bogus\"", "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "{\"type\":\"function\",\"function\":{\"name\":\"missing\"}}", "5"],
        ["chat_template_kwargs"] = ["{}", "{\"enable_thinking\":true}", "[]"],
        ["add_generation_prompt"] = ["true", "false", "\"x\""],
        ["continue_final_message"] = ["true", "false"],
        ["timeout"] = Completions["timeout"],
        ["seed"] = Completions["seed"],
        ["logit_bias"] = Completions["logit_bias"],
        ["unknown_field_xyz"] = Completions["unknown_field_xyz"],
    };

    /// <summary>Values that are valid on their own, so that many generated requests are accepted and generate.</summary>
    private static readonly Dictionary<string, string[]> CompletionsValid = new()
    {
        ["model"] = ["\"tiny-pycoder\""],
        ["prompt"] = ["\"def f():\"", "[1,2,3]", "[\"a\",\"b\"]", "\"<|endoftext|>\"", "\"\\u00e9\\ud83d\\ude00\""],
        ["max_tokens"] = ["1", "4", "8"],
        ["n"] = ["1", "2", "16"],
        ["logprobs"] = ["0", "5", "20"],
        ["echo"] = ["true", "false"],
        ["temperature"] = ["0", "0.7", "2"],
        ["top_p"] = ["0.5", "1"],
        ["top_k"] = ["-1", "0", "40"],
        ["min_p"] = ["0", "0.2"],
        ["stop"] = ["\"\\n\"", "[\"a\",\"b\"]"],
        ["stop_token_ids"] = ["[0]", "[]"],
        ["seed"] = ["0", "42", "-5"],
        ["stream"] = ["true", "false"],
        ["logit_bias"] = ["{\"5\":100}", "{\"7\":-100}"],
        ["presence_penalty"] = ["0.5", "-2"],
        ["frequency_penalty"] = ["2"],
        ["repetition_penalty"] = ["1.2"],
        ["min_tokens"] = ["0", "2"],
        ["ignore_eos"] = ["true", "false"],
        ["response_format"] = ["{\"type\":\"json_object\"}", "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}"],
        ["timeout"] = ["60"],
        ["prompt_logprobs"] = ["0", "3"],
        ["skip_special_tokens"] = ["false"],
        ["return_token_ids"] = ["true"],
        ["unknown_field_xyz"] = ["{\"deep\":[1,2,3]}"],
    };

    private static readonly Dictionary<string, string[]> ChatValid = new()
    {
        ["messages"] = ["[{\"role\":\"user\",\"content\":\"hi\"}]", "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}]"],
        ["n"] = ["1", "3"],
        ["logprobs"] = ["true"],
        ["top_logprobs"] = ["0", "20"],
        ["temperature"] = ["0", "1"],
        ["stream"] = ["true", "false"],
        ["response_format"] = CompletionsValid["response_format"],
        ["tools"] = ["[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}}}}}]"],
        ["seed"] = ["1"],
        ["unknown_field_xyz"] = ["1"],
    };

    private static readonly string[] TimeoutHeaders = ["", "", "", "abc", "-1", "0", "1e400", "30", "NaN", "  "];

    private static string Nest(string open, string close, int depth) => string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth));

    private static string Ids(int count) => "[" + string.Join(",", Enumerable.Range(0, count).Select(i => (i * 17 % 4000) + 5)) + "]";

    /// <summary>One request: a path, a body (as bytes: it need not be UTF-8), an optional timeout header.</summary>
    public sealed record FuzzRequest(string Path, byte[] Body, string TimeoutHeader)
    {
        public override string ToString()
        {
            // Long runs (huge strings, deep nesting, id lists) shortened so that the failing request stays readable.
            var text = System.Text.RegularExpressions.Regex.Replace(Encoding.UTF8.GetString(Body), @"(.{1,6}?)\1{20,}", m => $"<{m.Groups[1].Value} x{m.Length / m.Groups[1].Length}>");
            return $"{Path} [{TimeoutHeader}] {(text.Length > 3000 ? text[..3000] + "..." : text)}";
        }
    }

    private static Gen<string> Value(string[] specific) => Gen.Frequency((3, Gen.OneOf(specific)), (1, Gen.OneOf(Anything)));

    private static Gen<string> Object(Dictionary<string, string[]> fields, Dictionary<string, string[]> valid, bool chat)
    {
        var names = fields.Keys.ToArray();
        var hostile = Gen.OneOf(names).SelectMany(name => Value(fields[name]).Select(value => (name, value)));
        var validNames = valid.Keys.ToArray();
        var good = Gen.OneOf(validNames).SelectMany(name => Gen.OneOf(valid[name]).Select(value => (name, value)));

        // Half hostile throughout (on top of a valid prompt or conversation); half valid fields with at most one hostile one, so that acceptance paths are fuzzed too.
        var pairs = Gen.Frequency(
            (1, hostile.Array[0, 8]),
            (1, Gen.Select(good.Array[1, 6], hostile.Array[0, 1], static (a, b) => a.Concat(b).ToArray())));
        return pairs.Select(pairs =>
        {
            var chosen = new Dictionary<string, string>();
            if (chat)
            {
                chosen["messages"] = valid["messages"][0];
            }
            else
            {
                chosen["prompt"] = valid["prompt"][0];
            }

            foreach (var (name, value) in pairs)
            {
                chosen[name] = value;
            }

            // Keep valid requests short: a chat request without a usable length would run to the end of the context.
            if (chat && !chosen.ContainsKey("max_completion_tokens"))
            {
                chosen["max_completion_tokens"] = "8";
            }

            return "{" + string.Join(",", chosen.Select(p => JsonSerializer.Serialize(p.Key) + ":" + p.Value)) + "}";
        });
    }

    private static readonly Gen<FuzzRequest> Requests =
        Gen.Select(
            Gen.Bool,
            Gen.Int[0, 14],
            Gen.Int[0, 1_000_000],
            Gen.Byte.Array[0, 64],
            Gen.OneOf(TimeoutHeaders))
        .SelectMany(t =>
        {
            var (chat, mutation, position, garbage, header) = t;
            var path = chat ? "/v1/chat/completions" : "/v1/completions";
            return Object(chat ? Chat : Completions, chat ? ChatValid : CompletionsValid, chat).Select(json =>
            {
                var body = Encoding.UTF8.GetBytes(json);
                body = mutation switch
                {
                    // Truncated at a random point.
                    0 => body[..(position % (body.Length + 1))],

                    // Invalid UTF-8 spliced in.
                    1 => [.. body[..(position % (body.Length + 1))], 0xC3, 0x28, 0xFF, 0xFE, 0xED, 0xA0, 0x80, .. body[(position % (body.Length + 1))..]],

                    // Random bytes.
                    2 => garbage,

                    // The object wrapped in an array, or only a scalar.
                    3 => position % 2 == 0 ? [(byte)'[', .. body, (byte)']'] : "42"u8.ToArray(),
                    _ => body,
                };
                return new FuzzRequest(path, body, header);
            });
        });

    [Fact]
    public async Task MalformedAndAdversarialRequests_Are4xxOrValidCompletions_AndTheServerStaysWhole()
    {
        var server = fixture.Server;
        var before = await server.CompleteAsync(Reference);
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), out var n) ? n : 600;
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        await Requests.SampleAsync(
            async request =>
            {
                var status = await SendAndCheckAsync(server.Http, request);
                statuses.AddOrUpdate(status, 1, static (_, c) => c + 1);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine);

        output.WriteLine("statuses: " + string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}x{p.Value}")));
        Assert.True(statuses.Keys.Any(s => s == 200), "no request was valid: the generator tests only the validation");
        Assert.True(statuses.Keys.Any(s => s == 400), "no request was refused: the generator is too tame");

        // Afterwards: the same answer to a normal request, and nothing left behind.
        var after = await server.CompleteAsync(Reference);
        Assert.Equal(before.GetProperty("choices")[0].GetProperty("text").GetString(), after.GetProperty("choices")[0].GetProperty("text").GetString());
        await Eventually.TrueAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0 && server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    /// <summary>Sends one request and checks the property; returns the status.</summary>
    /// <remarks>
    /// <paramref name="deadlineMayExpire"/>: the request names a deadline short enough to run out (the overflow fuzz's
    /// <c>"timeout":1</c> on an unbounded chat completion under a loaded CI machine); then a 504 is a correct answer,
    /// but only as the deadline's own envelope (<c>timeout_error</c>, code <c>timeout</c>), never another 5xx.
    /// </remarks>
    internal static async Task<int> SendAndCheckAsync(HttpClient http, FuzzRequest request, bool deadlineMayExpire = false)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, request.Path) { Content = new ByteArrayContent(request.Body) };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (request.TimeoutHeader.Length > 0)
        {
            message.Headers.TryAddWithoutValidation("X-Request-Timeout", request.TimeoutHeader);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var status = (int)response.StatusCode;
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        if (deadlineMayExpire && status == 504)
        {
            using var expired = JsonDocument.Parse(text);
            var error = expired.RootElement.GetProperty("error");
            Assert.Equal("timeout_error", error.GetProperty("type").GetString());
            Assert.Equal("timeout", error.GetProperty("code").GetString());
            return status;
        }

        Assert.True(status < 500, $"{status} for {request}: {text}");
        if (status >= 400)
        {
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            using var document = JsonDocument.Parse(text);
            var error = document.RootElement.GetProperty("error");
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()), text);
            Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
            Assert.True(error.GetProperty("param").ValueKind is JsonValueKind.String or JsonValueKind.Null, text);
            Assert.True(error.GetProperty("code").ValueKind is JsonValueKind.String or JsonValueKind.Null, text);
            return status;
        }

        Assert.Equal(200, status);
        if (response.Content.Headers.ContentType?.MediaType == "text/event-stream")
        {
            var events = text.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]).ToList();
            Assert.Equal("[DONE]", events[^1]);
            foreach (var data in events.Take(events.Count - 1))
            {
                using var chunk = JsonDocument.Parse(data);
                Assert.False(chunk.RootElement.TryGetProperty("error", out _), $"error event for {request}: {data}");
                Assert.Equal(JsonValueKind.Array, chunk.RootElement.GetProperty("choices").ValueKind);
            }
        }
        else
        {
            using var document = JsonDocument.Parse(text);
            var choices = document.RootElement.GetProperty("choices");
            Assert.True(choices.GetArrayLength() > 0, text);
            foreach (var choice in choices.EnumerateArray())
            {
                Assert.Equal(JsonValueKind.String, choice.GetProperty("finish_reason").ValueKind);
            }
        }

        return status;
    }
}
