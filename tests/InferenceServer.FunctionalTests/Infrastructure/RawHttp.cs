using System.Net.Sockets;
using System.Text;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// HTTP/1.1 over a bare socket, for requests HttpClient would not send as written: a path exactly as given (no
/// Uri canonicalization of case, percent-encoding or dot segments), or a body with hand-made chunked framing.
/// </summary>
public static class RawHttp
{
    /// <summary>One answer: the status and the whole response text after the headers (chunk framing left in).</summary>
    public sealed record Response(int Status, string Headers, string Body);

    /// <summary>Sends <paramref name="head"/> (request line and headers, without the blank line) and <paramref name="body"/>, reads to the connection's close.</summary>
    public static async Task<Response> SendAsync(Uri server, string head, byte[] body, int seconds = 60)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port, timeout.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head + $"\r\nHost: {server.Host}:{server.Port}\r\nConnection: close\r\n\r\n"), timeout.Token);
        await stream.WriteAsync(body, timeout.Token);
        using var all = new MemoryStream();
        await stream.CopyToAsync(all, timeout.Token);
        var text = Encoding.UTF8.GetString(all.ToArray());
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(end > 0, $"no response head: '{text}'");
        var status = int.Parse(text.AsSpan(9, 3), provider: System.Globalization.CultureInfo.InvariantCulture);
        return new Response(status, text[..end], text[(end + 4)..]);
    }

    /// <summary>A request for <paramref name="path"/> as written, with an optional bearer key and JSON body.</summary>
    public static Task<Response> RequestAsync(Uri server, string method, string path, string? key = null, string? json = null)
    {
        var head = new StringBuilder($"{method} {path} HTTP/1.1");
        if (key is not null)
        {
            head.Append("\r\nAuthorization: Bearer ").Append(key);
        }

        var body = json is null ? [] : Encoding.UTF8.GetBytes(json);
        if (json is not null)
        {
            head.Append("\r\nContent-Type: application/json\r\nContent-Length: ").Append(body.Length);
        }

        return SendAsync(server, head.ToString(), body);
    }
}
