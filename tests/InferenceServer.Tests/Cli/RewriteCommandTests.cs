// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Cli;
using InferenceServer.Onnx.Graph;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Tests.Cli;

/// <summary><c>InferenceServer rewrite &lt;model folder&gt; --out &lt;folder&gt;</c>: the graph the server runs, written out.</summary>
public sealed class RewriteCommandTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("rewrite-command-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Fact]
    public void DefaultModel_IsWrittenRewritten_WithItsOtherFiles_AndRewritingAgainFindsNothing()
    {
        var source = DefaultModel();
        var target = Path.Combine(_work, "out");
        var output = new StringWriter();

        Assert.Equal(0, RewriteCommand.Run(["rewrite", source, "--out", target], output, new StringWriter()));

        Assert.Contains("without the grouped-query repeat", output.ToString(), StringComparison.Ordinal);
        foreach (var file in Directory.GetFiles(source).Select(Path.GetFileName))
        {
            Assert.True(File.Exists(Path.Combine(target, file!)), file);
        }

        Assert.True(new FileInfo(Path.Combine(target, "model.onnx")).Length < new FileInfo(Path.Combine(source, "model.onnx")).Length);
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "config.json")), File.ReadAllBytes(Path.Combine(target, "config.json")));
        Assert.Equal("tiny-pycoder", ModelPackage.Load(source).Name);
        Assert.Equal(ModelPackage.Load(source).Config.LayerCount, ModelPackage.Load(target).Config.LayerCount);
        Assert.Null(GraphRewriter.Rewrite(Path.Combine(target, "model.onnx")));
    }

    [Theory]
    [InlineData("rewrite")]
    [InlineData("rewrite models/tiny-pycoder")]
    [InlineData("rewrite models/tiny-pycoder --out")]
    [InlineData("rewrite models/tiny-pycoder --to x")]
    public void BadArguments_PrintTheUsage(string commandLine)
    {
        var args = commandLine.Split(' ');
        var error = new StringWriter();
        Assert.Equal(2, RewriteCommand.Run(args, new StringWriter(), error));
        Assert.Contains(RewriteCommand.Usage, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void OutIntoTheModelsOwnFolder_IsRefused()
    {
        var error = new StringWriter();
        Assert.Equal(2, RewriteCommand.Run(["rewrite", DefaultModel(), "--out", DefaultModel() + "/"], new StringWriter(), error));
        Assert.Contains("another folder", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void MissingOrBrokenModel_FailsWithTheReason()
    {
        var error = new StringWriter();
        Assert.Equal(1, RewriteCommand.Run(["rewrite", Path.Combine(_work, "nothing-here"), "--out", Path.Combine(_work, "out")], new StringWriter(), error));
        Assert.StartsWith("rewrite: ", error.ToString(), StringComparison.Ordinal);

        var broken = Path.Combine(_work, "broken");
        Directory.CreateDirectory(broken);
        foreach (var file in Directory.GetFiles(DefaultModel(), "*.json"))
        {
            File.Copy(file, Path.Combine(broken, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(broken, "model.onnx"), "this is not a protobuf");
        error = new StringWriter();
        Assert.Equal(1, RewriteCommand.Run(["rewrite", broken, "--out", Path.Combine(_work, "out2")], new StringWriter(), error));
        Assert.Contains("not a valid ONNX model", error.ToString(), StringComparison.Ordinal);
    }

    private static string DefaultModel()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "models", "tiny-pycoder");
            if (File.Exists(Path.Combine(candidate, "model.onnx")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("models/tiny-pycoder not found above the test's folder");
    }
}
