// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>
/// Sends streamed <c>POST /v1/completions</c> requests with token-id prompts and times the Server-Sent Events that come
/// back. Tokens are counted from each chunk's <c>token_ids</c> (<c>return_token_ids</c>), never from text. With several
/// servers (replicas) the requests go to them in turn, as a round-robin load balancer sends them.
/// </summary>
internal sealed class CompletionClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly Uri[] _completions;
    private readonly string? _model;
    private long _sent;

    /// <summary>A client for the server at <paramref name="baseUrl"/>; <paramref name="model"/> is sent when not null.</summary>
    public CompletionClient(Uri baseUrl, string? model)
        : this([baseUrl], model)
    {
    }

    /// <summary>
    /// A client for the servers at <paramref name="baseUrls"/>, request i going to server i mod n; <paramref name="model"/>
    /// is sent when not null.
    /// </summary>
    public CompletionClient(IReadOnlyList<Uri> baseUrls, string? model)
    {
        ArgumentNullException.ThrowIfNull(baseUrls);
        if (baseUrls.Count == 0)
        {
            throw new ArgumentException("At least one server URL is needed.", nameof(baseUrls));
        }

        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _completions = [.. baseUrls.Select(static url => new Uri(url, "v1/completions"))];
        _model = model;
    }

    /// <summary>Requests sent to each server so far, in the order the URLs were given.</summary>
    public long[] SentPerServer()
    {
        var sent = Interlocked.Read(ref _sent);
        return [.. Enumerable.Range(0, _completions.Length).Select(i => (sent / _completions.Length) + (i < sent % _completions.Length ? 1 : 0))];
    }

    /// <summary>What one request gave: the generated ids and the sample, or the error that failed it.</summary>
    internal sealed record Outcome(RequestSample? Sample, List<int> TokenIds, string? Error);

    /// <summary>Streams a completion of <paramref name="maxTokens"/> tokens for <paramref name="prompt"/> (greedy).</summary>
    public async Task<Outcome> CompleteAsync(int[] prompt, int maxTokens, bool ignoreEos, CancellationToken cancellationToken)
    {
        var ids = new List<int>(maxTokens);
        var gaps = new List<double>(maxTokens);
        var start = Stopwatch.GetTimestamp();
        long first = 0;
        long last = 0;
        long end;
        try
        {
            using var content = new ByteArrayContent(Body(prompt, maxTokens, ignoreEos));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            var target = _completions[(Interlocked.Increment(ref _sent) - 1) % _completions.Length];
            using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = content };
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                var text = await response.Content.ReadAsStringAsync(cancellationToken);
                return new Outcome(null, ids, $"HTTP {(int)response.StatusCode}: {text}");
            }

            // The events are read as bytes and parsed in place (no string per line, no JSON document per event): the load
            // generator shares the machine with the server it measures, so it should take as little CPU per token as it can.
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new byte[16 * 1024];
            var filled = 0;
            var done = false;
            while (!done)
            {
                if (filled == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
                if (read == 0)
                {
                    break;
                }

                filled += read;
                var consumed = 0;
                int newline;
                while (!done && (newline = buffer.AsSpan(consumed, filled - consumed).IndexOf((byte)'\n')) >= 0)
                {
                    var line = buffer.AsSpan(consumed, newline).TrimEnd((byte)'\r');
                    consumed += newline + 1;
                    if (!line.StartsWith("data:"u8))
                    {
                        continue;
                    }

                    var data = line[5..].Trim((byte)' ');
                    if (data.SequenceEqual("[DONE]"u8))
                    {
                        done = true;
                        break;
                    }

                    var count = ReadChunk(data, ids, out var error);
                    if (error is not null)
                    {
                        return new Outcome(null, ids, error);
                    }

                    if (count > 0)
                    {
                        var now = Stopwatch.GetTimestamp();
                        if (first == 0)
                        {
                            first = now;
                        }
                        else
                        {
                            gaps.Add(Stopwatch.GetElapsedTime(last, now).TotalMilliseconds);
                        }

                        last = now;
                    }
                }

                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
            }

            end = Stopwatch.GetTimestamp();
            if (!done || ids.Count == 0)
            {
                return new Outcome(null, ids, done ? "the stream carried no tokens" : "the stream ended without [DONE]");
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException)
        {
            return new Outcome(null, ids, ex.Message);
        }

        var ttft = Stopwatch.GetElapsedTime(start, first).TotalMilliseconds;
        var e2e = Stopwatch.GetElapsedTime(start, end).TotalMilliseconds;
        return new Outcome(new RequestSample(prompt.Length, ids.Count, ttft, e2e, gaps), ids, null);
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private byte[] Body(int[] prompt, int maxTokens, bool ignoreEos)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (_model is not null)
            {
                json.WriteString("model", _model);
            }

            json.WriteStartArray("prompt");
            foreach (var id in prompt)
            {
                json.WriteNumberValue(id);
            }

            json.WriteEndArray();
            json.WriteNumber("max_tokens", maxTokens);
            json.WriteNumber("temperature", 0);
            json.WriteBoolean("ignore_eos", ignoreEos);
            json.WriteBoolean("stream", true);
            json.WriteBoolean("return_token_ids", true);
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>
    /// Adds the chunk's <c>token_ids</c> (in its choices) to <paramref name="ids"/> and returns how many it carried; a
    /// non-null <c>error</c> member is returned in <paramref name="error"/> instead.
    /// </summary>
    private static int ReadChunk(ReadOnlySpan<byte> data, List<int> ids, out string? error)
    {
        error = null;
        var reader = new Utf8JsonReader(data);
        var count = 0;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            if (reader.CurrentDepth == 1 && reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    error = Encoding.UTF8.GetString(data[start..(int)reader.BytesConsumed]);
                    return 0;
                }
            }
            else if (reader.ValueTextEquals("token_ids"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.Number)
                    {
                        ids.Add(reader.GetInt32());
                        count++;
                    }
                }
            }
        }

        return count;
    }
}
