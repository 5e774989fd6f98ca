// Licensed under the MIT License. See LICENSE in the repository root.
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace InferenceServer.Grpc;

/// <summary>
/// Opens the gRPC port beside the HTTP port on the one Kestrel server: HTTP/2 only, plaintext (h2c) or TLS.
/// Kestrel ignores <c>--urls</c> once any endpoint is configured in code, so this binds the HTTP URLs itself, the way
/// Kestrel would (<c>urls</c>, else <c>http_ports</c>, else <c>http://localhost:5000</c>). After start,
/// <see cref="BoundEndPoint"/> holds the actual port (useful with <c>--grpc-port 0</c>). The URL settings are cleared
/// once read, so that Kestrel does not also see them and warn "Overriding address(es)" at every start.
/// </summary>
internal sealed class GrpcListener
{
    private const string DefaultUrl = "http://localhost:5000";

    private ListenOptions? _listen;

    private GrpcListener(bool useTls) => UsesTls = useTls;

    /// <summary>True when the gRPC port serves TLS.</summary>
    public bool UsesTls { get; }

    /// <summary>The bound gRPC endpoint once the server has started (the real port when 0 was asked for).</summary>
    public IPEndPoint? BoundEndPoint => _listen?.IPEndPoint;

    /// <summary>True when <paramref name="connection"/> came in on the gRPC port.</summary>
    public bool IsGrpcConnection(ConnectionInfo connection) => BoundEndPoint is { } endPoint && connection.LocalPort == endPoint.Port;

    /// <summary>A client address for the bound endpoint (a wildcard bind is reached over loopback).</summary>
    public Uri? Address
    {
        get
        {
            if (BoundEndPoint is not { } endPoint)
            {
                return null;
            }

            var host = endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any)
                ? "127.0.0.1"
                : endPoint.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{endPoint.Address}]" : endPoint.Address.ToString();
            return new Uri($"{(UsesTls ? "https" : "http")}://{host}:{endPoint.Port}");
        }
    }

    /// <summary>
    /// Configures Kestrel with the HTTP URLs and the gRPC port of <paramref name="options"/>. Returns null, changing
    /// nothing, when no gRPC port is set.
    /// </summary>
    /// <exception cref="FormatException">A URL or the TLS certificate is unusable.</exception>
    public static GrpcListener? Configure(WebApplicationBuilder builder, GrpcServerOptions options)
    {
        if (options.Port is not { } port)
        {
            return null;
        }

        var urls = ReadHttpUrls(builder.Configuration);
        // Bound below, in code; left set, Kestrel would log that the code's endpoints override them. "urls" becomes a
        // list of no URLs rather than empty, since the web host falls back to its own copy of an empty one.
        builder.Configuration["urls"] = ";";
        builder.Configuration["http_ports"] = null;
        builder.Configuration["https_ports"] = null;

        var addresses = new List<BindingAddress>(urls.Count);
        foreach (var url in urls)
        {
            try
            {
                addresses.Add(BindingAddress.Parse(url));
            }
            catch (FormatException ex)
            {
                throw new FormatException($"--urls: '{url}' is not a URL ({ex.Message})", ex);
            }
        }

        var certificate = options.TlsCertificate is null ? null : LoadCertificate(options.TlsCertificate, options.TlsKey);
        var listener = new GrpcListener(certificate is not null);
        var grpcHost = options.Host ?? (addresses.Count > 0 && !addresses[0].IsUnixPipe ? addresses[0].Host : "localhost");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var address in addresses)
            {
                Listen(kestrel, address.IsUnixPipe ? null : address.Host, address.Port, address.IsUnixPipe ? address.UnixPipePath : null, listen =>
                {
                    if (string.Equals(address.Scheme, "https", StringComparison.OrdinalIgnoreCase))
                    {
                        listen.UseHttps();
                    }
                });
            }

            Listen(kestrel, grpcHost, port, null, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }

                listener._listen = listen;
            });
        });
        return listener;
    }

    private static List<string> ReadHttpUrls(IConfiguration configuration)
    {
        var urls = new List<string>();
        var text = configuration["urls"];
        if (!string.IsNullOrWhiteSpace(text))
        {
            urls.AddRange(text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return urls;
        }

        AddPorts(urls, "http", configuration["http_ports"]);
        AddPorts(urls, "https", configuration["https_ports"]);
        if (urls.Count == 0)
        {
            urls.Add(DefaultUrl);
        }

        return urls;
    }

    private static void AddPorts(List<string> urls, string scheme, string? ports)
    {
        if (string.IsNullOrWhiteSpace(ports))
        {
            return;
        }

        foreach (var port in ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            urls.Add($"{scheme}://*:{port}");
        }
    }

    private static void Listen(KestrelServerOptions kestrel, string? host, int port, string? unixPipe, Action<ListenOptions> configure)
    {
        if (unixPipe is not null)
        {
            kestrel.ListenUnixSocket(unixPipe, configure);
        }
        else if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(port, configure);
        }
        else if (IPAddress.TryParse(host?.Trim('[', ']'), out var ip))
        {
            kestrel.Listen(ip, port, configure);
        }
        else
        {
            // "*", "+" and host names bind every interface, as Kestrel does for --urls.
            kestrel.ListenAnyIP(port, configure);
        }
    }

    private static X509Certificate2 LoadCertificate(string certificatePath, string? keyPath)
    {
        try
        {
            if (keyPath is not null)
            {
                return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            }

            return certificatePath.EndsWith(".pem", StringComparison.OrdinalIgnoreCase) || certificatePath.EndsWith(".crt", StringComparison.OrdinalIgnoreCase)
                ? X509Certificate2.CreateFromPemFile(certificatePath)
                : X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password: null);
        }
        catch (Exception ex) when (ex is IOException or CryptographicException or UnauthorizedAccessException or ArgumentException)
        {
            throw new FormatException($"--grpc-tls-certificate: '{certificatePath}' could not be loaded{(keyPath is null ? string.Empty : $" with the key '{keyPath}'")}: {ex.Message}", ex);
        }
    }
}
