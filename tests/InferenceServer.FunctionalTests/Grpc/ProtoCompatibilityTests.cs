using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// The proto compiles unchanged for other languages: Node.js's @grpc/proto-loader loads it (tests/proto-check), and
/// protoc generates Python from it, each seeing the same service the server implements.
/// </summary>
public sealed class ProtoCompatibilityTests
{
    private static string ProtoPath => Path.Combine(RepositoryPaths.Root, "proto", "inference", "v1", "inference.proto");

    private static string CheckDirectory => Path.Combine(RepositoryPaths.Root, "tests", "proto-check");

    [NodeFact]
    public async Task GrpcProtoLoader_LoadsTheService_WithTheServersMethods()
    {
        if (!Directory.Exists(Path.Combine(CheckDirectory, "node_modules", "@grpc", "proto-loader")))
        {
            // .ci/run installs it; a plain `dotnet test` does it here.
            var npm = ExternalTools.Find("npm") ?? throw new InvalidOperationException("node is installed but npm is not; run `npm ci` in tests/proto-check.");
            var install = await ExternalTools.RunAsync(npm, CheckDirectory, TimeSpan.FromMinutes(3), "ci", "--no-audit", "--no-fund");
            Assert.True(install.Code == 0, $"`npm ci` in tests/proto-check failed:\n{install.Stdout}\n{install.Stderr}");
        }

        var (code, stdout, stderr) = await ExternalTools.RunAsync(ExternalTools.Find("node")!, CheckDirectory, TimeSpan.FromMinutes(1), "check.js", ProtoPath);
        Assert.True(code == 0, $"@grpc/proto-loader could not load the proto:\n{stderr}");

        using var methods = JsonDocument.Parse(stdout);
        var loaded = methods.RootElement.EnumerateArray()
            .Select(m => (m.GetProperty("name").GetString(), m.GetProperty("requestType").GetString(), m.GetProperty("responseType").GetString(), m.GetProperty("responseStream").GetBoolean()))
            .ToList();
        var served = Inference.Descriptor.Methods
            .Select(m => ((string?)m.Name, (string?)m.InputType.Name, (string?)m.OutputType.Name, m.IsServerStreaming))
            .ToList();
        Assert.Equal(served, loaded);
        Assert.Contains(("Abort", "AbortRequest", "AbortResponse", false), loaded);
    }

    [Fact]
    public async Task Protoc_GeneratesPython_FromTheUnchangedProto()
    {
        var protoc = FindProtoc();
        var output = Directory.CreateTempSubdirectory("proto-python-").FullName;
        try
        {
            var (code, _, stderr) = await ExternalTools.RunAsync(protoc, RepositoryPaths.Root, TimeSpan.FromMinutes(1), "--proto_path=proto", "--python_out=" + output, "--cpp_out=" + output, "proto/inference/v1/inference.proto");
            Assert.True(code == 0, $"protoc failed:\n{stderr}");
            var python = File.ReadAllText(Path.Combine(output, "inference", "v1", "inference_pb2.py"));
            Assert.Contains("inference.v1", python);
            Assert.Contains("_INFERENCE", python);
            Assert.True(File.Exists(Path.Combine(output, "inference", "v1", "inference.pb.h")));
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    /// <summary>protoc as shipped in the Grpc.Tools package the build restores (the same compiler that builds the server's stubs).</summary>
    private static string FindProtoc()
    {
        var tools = typeof(ProtoCompatibilityTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "GrpcToolsDirectory").Value!;
        var platform = OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macosx" : "linux";
        var architecture = RuntimeInformation.OSArchitecture switch
        {
            Architecture.Arm64 when platform != "macosx" => "arm64",
            Architecture.X86 => "x86",
            _ when platform == "macosx" => "universal",
            _ => "x64",
        };
        var path = Path.Combine(tools, "tools", $"{platform}_{architecture}", OperatingSystem.IsWindows() ? "protoc.exe" : "protoc");
        Assert.True(File.Exists(path), $"protoc not found at {path} (from the Grpc.Tools package)");
        return path;
    }
}
