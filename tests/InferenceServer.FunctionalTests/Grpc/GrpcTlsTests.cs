using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;
using InferenceServer.Hosting;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>The gRPC port with TLS (a PEM certificate and key), and a certificate that cannot be loaded stopping the start.</summary>
public sealed class GrpcTlsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("grpc-tls-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task TlsPort_ServesOverHttps()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var certPath = Path.Combine(_folder, "server.crt");
        var keyPath = Path.Combine(_folder, "server.key");
        File.WriteAllText(certPath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());

        await using var server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--grpc-tls-certificate", certPath, "--grpc-tls-key", keyPath);
        Assert.Equal("https", server.GrpcAddress!.Scheme);
        var thumbprint = certificate.Thumbprint;
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert?.Thumbprint == thumbprint };
        using var channel = GrpcChannel.ForAddress(server.GrpcAddress, new GrpcChannelOptions { HttpHandler = handler });
        var client = new Inference.InferenceClient(channel);

        var info = await client.GetModelInfoAsync(new GetModelInfoRequest());
        Assert.Equal("tiny-pycoder", info.Id);
        var result = await GenerateResult.ReadAsync(client, new GenerateRequest { Text = "import os\n", Sampling = new SamplingParameters { Temperature = 0 }, Stop = new StopConditions { MaxTokens = 4 } });
        Assert.Equal(4, result.TokenIds[0].Count);
    }

    [Fact]
    public void UnreadableCertificate_StopsTheStart_NamingTheOption()
    {
        var path = Path.Combine(_folder, "missing.pem");
        var ex = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", RepositoryPaths.DefaultModel, "--urls", "http://127.0.0.1:0", "--grpc-port", "0", "--grpc-tls-certificate", path]));
        Assert.Contains("--grpc-tls-certificate", ex.Message);
        Assert.Contains("missing.pem", ex.Message);
    }
}
