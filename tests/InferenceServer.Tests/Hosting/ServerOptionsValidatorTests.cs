using System.Reflection;
using System.Runtime.CompilerServices;
using InferenceServer.Grpc;
using InferenceServer.Hosting;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Hosting;

/// <summary>
/// <see cref="ServerOptions"/> as the options pattern has it: bound once (<see cref="ServerOptionsBinder"/>), the rules
/// between flags checked once by <see cref="ServerOptionsValidator"/> with messages that name the flags, and immutable
/// afterwards (init-only).
/// </summary>
public sealed class ServerOptionsValidatorTests
{
    private static ServerOptions Bind(params (string Key, string Value)[] values)
        => ServerOptionsBinder.Bind(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build());

    public static TheoryData<(string Key, string Value)[], string> Conflicts => new()
    {
        { [("gpu-memory-utilization", "0.9"), ("kv-cache-memory", "1g")], "--gpu-memory-utilization and --kv-cache-memory both size the KV cache; give only one" },
        { [("grpc-tls-key", "key.pem")], "--grpc-tls-key needs --grpc-tls-certificate (the PEM certificate of that key)" },
        { [("grpc-host", "127.0.0.1")], "--grpc-host and --grpc-tls-certificate need --grpc-port (the gRPC listener is off without it)" },
        { [("grpc-tls-certificate", "cert.pem")], "--grpc-host and --grpc-tls-certificate need --grpc-port (the gRPC listener is off without it)" },
        { [("deterministic", "true"), ("max-num-batched-tokens", "300"), ("max-num-seqs", "16")], "--deterministic cuts prompts at multiples of 512 positions, so --max-num-batched-tokens (300) must be at least 512 + --max-num-seqs (16) = 528: room for a prompt's next piece beside a full batch of decodes" },
    };

    [Theory]
    [MemberData(nameof(Conflicts))]
    public void Conflicts_BindButFailValidation_WithTheFlagsNamed((string Key, string Value)[] values, string message)
    {
        var options = Bind(values);
        var result = new ServerOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Equal([message], result.Failures);
        Assert.Equal(message, Assert.Throws<FormatException>(() => ServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build())).Message);
    }

    [Fact]
    public void Validator_ReportsEveryConflict()
    {
        var result = new ServerOptionsValidator().Validate(null, Bind(("gpu-memory-utilization", "0.5"), ("kv-cache-memory", "64m"), ("grpc-tls-key", "k.pem")));
        Assert.Equal(2, result.Failures!.Count());
    }

    [Fact]
    public void Validator_PassesTheDefaultsAndAConsistentGrpcListener()
    {
        Assert.True(new ServerOptionsValidator().Validate(null, Bind()).Succeeded);
        Assert.True(new ServerOptionsValidator().Validate(null, Bind(("grpc-port", "0"), ("grpc-host", "127.0.0.1"), ("grpc-tls-certificate", "c.pem"), ("grpc-tls-key", "k.pem"))).Succeeded);
        Assert.True(new ServerOptionsValidator().Validate(null, Bind(("gpu-memory-utilization", "0.5"))).Succeeded);
    }

    [Theory]
    [InlineData(typeof(ServerOptions))]
    [InlineData(typeof(GrpcServerOptions))]
    [InlineData(typeof(InferenceServer.Serving.ServingLimits))]
    [InlineData(typeof(InferenceServer.Http.HttpOptions))]
    public void Options_HaveNoSetters_OnlyInit(Type type)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var setter = property.SetMethod;
            Assert.True(setter is null || setter.ReturnParameter.GetRequiredCustomModifiers().Contains(typeof(IsExternalInit)), $"{type.Name}.{property.Name} has a setter; options are immutable once bound.");
        }
    }

    [Fact]
    public void BindHttp_ReadsListsAndNamesTheFlag_OnABadValue()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["api-key"] = "sk-a,sk-b",
            ["allowed-origins"] = "[\"https://a\", \"https://b\"]",
            ["allow-credentials"] = "true",
        }).Build();
        var http = ServerOptionsBinder.BindHttp(configuration);
        Assert.Equal(["sk-a", "sk-b"], http.ApiKeys);
        Assert.Equal(["https://a", "https://b"], http.AllowedOrigins);
        Assert.Equal(["*"], http.AllowedMethods);
        Assert.True(http.AllowCredentials);

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["allow-credentials"] = "often" }).Build();
        Assert.Equal("--allow-credentials must be true or false, not 'often'", Assert.Throws<FormatException>(() => ServerOptionsBinder.BindHttp(bad)).Message);
        var list = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["allowed-origins"] = "[1, 2]" }).Build();
        Assert.StartsWith("--allowed-origins must be a JSON array", Assert.Throws<FormatException>(() => ServerOptionsBinder.BindHttp(list)).Message, StringComparison.Ordinal);
    }
}
