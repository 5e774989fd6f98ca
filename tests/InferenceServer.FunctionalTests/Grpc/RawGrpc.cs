using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// gRPC without a client library: one HTTP/2 request (prior-knowledge h2c, as gRPC clients speak it) with hand-made
/// frames and headers, read to its end, its status taken from the trailers (or the headers of a trailers-only answer).
/// </summary>
public static class RawGrpc
{
    public sealed record Result(HttpStatusCode HttpStatus, string? GrpcStatus, string? GrpcMessage, byte[] Body, HttpResponseHeaders Headers);

    /// <summary>An HTTP/2-only client for <paramref name="address"/>.</summary>
    public static HttpClient CreateClient(Uri address) => new(new SocketsHttpHandler())
    {
        BaseAddress = address,
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(90),
    };

    /// <summary>A frame: the compressed-flag, a 4-byte big-endian length (which need not match) and the payload.</summary>
    public static byte[] Frame(byte[] payload, byte flag = 0, uint? length = null)
    {
        var frame = new byte[5 + payload.Length];
        frame[0] = flag;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), length ?? (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>POSTs <paramref name="body"/> to <paramref name="path"/> as a gRPC call with <paramref name="headers"/> and reads the whole answer.</summary>
    public static async Task<Result> CallAsync(HttpClient client, string path, byte[] body, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(TimeSpan.FromSeconds(90));
        var bytes = await response.Content.ReadAsByteArrayAsync().WaitAsync(TimeSpan.FromSeconds(90));
        return new Result(response.StatusCode, Find(response, "grpc-status"), Find(response, "grpc-message") is { } message ? Uri.UnescapeDataString(message) : null, bytes, response.Headers);
    }

    private static string? Find(HttpResponseMessage response, string name)
        => response.TrailingHeaders.TryGetValues(name, out var values) || response.Headers.TryGetValues(name, out values) ? values.Single() : null;
}

/// <summary>A request body that sends its first bytes and then holds the stream open until <see cref="Release"/>.</summary>
public sealed class StalledContent(byte[] first) : HttpContent
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => _released.TrySetResult();

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await stream.WriteAsync(first);
        await stream.FlushAsync();
        await _released.Task.WaitAsync(TimeSpan.FromSeconds(90));
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
