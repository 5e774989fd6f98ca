// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Globalization;
using InferenceServer.Bench;
using InferenceServer.Builder;
using InferenceServer.Quality;
using InferenceServer.Tokenization;

// Quality of a checkpoint's builds (issue 19, ADR 0006): perplexity on a held-out file, and greedy agreement with the
// fp32 build, on the CPU. Usage:
//   dotnet run -c Release --project bench/InferenceServer.Quality -- --checkpoint models/tiny-pycoder \
//       --file tests/fixtures/heldout/heldout.py [--model <served folder>] [--window 512] [--prompts 16] [--tokens 32]
const string UsageText =
    "usage: InferenceServer.Quality --file <held-out text> (--checkpoint <hf folder> | --model <served folder>) [both allowed]\n"
    + "       [--window 512] [--prompts 16] [--tokens 32] [--work <dir for the builds>]";
CommandLine options;
try
{
    options = new CommandLine(args, ["file", "checkpoint", "model", "window", "prompts", "tokens", "work"], []);
}
catch (FormatException ex)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(UsageText);
    return 2;
}

var file = options.String("file");
var checkpoint = options.String("checkpoint");
var served = options.String("model");
if (file is null || (checkpoint is null && served is null))
{
    Console.Error.WriteLine(UsageText);
    return 2;
}

var window = options.Int("window", 512, minimum: 16);
var promptCount = options.Int("prompts", 16, minimum: 1);
var tokenCount = options.Int("tokens", 32, minimum: 1);
var work = options.String("work") ?? Path.Combine(Path.GetTempPath(), "inference-server-quality");

// Every build of the checkpoint the CPU can run, and the served folder as it is.
var variants = new List<(string Name, string Folder)>();
if (checkpoint is not null)
{
    (string Name, BuildOptions Options)[] builds =
    [
        ("fp32", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "fp32") }),
        ("int4 block 32", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "int4-32"), DType = "int4", Int4BlockSize = 32 }),
        ("int4 block 32 + zero points", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "int4-32-zp"), DType = "int4", Int4BlockSize = 32, Int4ZeroPoints = true }),
        ("int4 block 128", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "int4-128"), DType = "int4", Int4BlockSize = 128 }),
        ("int4 block 128 + zero points", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "int4-128-zp"), DType = "int4", Int4BlockSize = 128, Int4ZeroPoints = true }),
        ("fp32, --graph genai (GroupQueryAttention)", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "genai-fp32"), Graph = "genai" }),
        ("int4 block 32, --graph genai", new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = Path.Combine(work, "genai-int4-32"), Graph = "genai", DType = "int4" }),
    ];
    foreach (var (name, build) in builds)
    {
        var result = ModelBuilder.Build(build);
        var bytes = new FileInfo(result.DataPath).Length;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"built {name}: {result.ParameterCount:N0} parameters, model.onnx.data {bytes / 1e6:F2} MB"));
        variants.Add((name, build.OutputDirectory));
    }
}

if (served is not null)
{
    variants.Add(($"served folder {Path.GetFileName(Path.GetFullPath(served))}", served));
}

var tokenizerFolder = checkpoint ?? served!;
var tokenizer = HfTokenizer.Load(Path.Combine(tokenizerFolder, "tokenizer.json"));
var bos = ReadBos(Path.Combine(tokenizerFolder, "config.json"));
var text = File.ReadAllText(file);
var tokens = tokenizer.Encode(text);
var prompts = Prompts(text, promptCount).Select(p => (IReadOnlyList<int>)[bos, .. tokenizer.Encode(p)]).ToList();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"held-out file {file}: {text.Length} chars, {tokens.Count} tokens; windows of {window}; {prompts.Count} greedy prompts x {tokenCount} tokens"));
Console.WriteLine("fp16: not run here: the builder's fp16 graph is the paged graph (com.microsoft.PagedAttention), which ONNX Runtime runs on CUDA only.");
Console.WriteLine();
Console.WriteLine("| build | perplexity | vs first | top-1 = first's, teacher-forced | greedy runs identical to first's | greedy common prefix (mean tokens) | seconds |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");

double? baseline = null;
int[]? baselineTop = null;
List<int[]>? baselineGreedy = null;
foreach (var (name, folder) in variants)
{
    var clock = Stopwatch.StartNew();
    using var evaluator = new QualityEvaluator(folder, window);
    var (perplexity, top) = evaluator.Perplexity(tokens, bos);
    var greedy = prompts.Select(p => evaluator.Greedy(p, tokenCount)).ToList();
    baseline ??= perplexity;
    baselineGreedy ??= greedy;
    baselineTop ??= top;
    var topEqual = 0;
    for (var i = 0; i < top.Length; i++)
    {
        topEqual += top[i] == baselineTop[i] ? 1 : 0;
    }

    var identical = 0;
    var prefix = 0;
    for (var i = 0; i < greedy.Count; i++)
    {
        identical += greedy[i].AsSpan().SequenceEqual(baselineGreedy[i]) ? 1 : 0;
        var common = 0;
        while (common < tokenCount && greedy[i][common] == baselineGreedy[i][common])
        {
            common++;
        }

        prefix += common;
    }

    Console.WriteLine(string.Create(
        CultureInfo.InvariantCulture,
        $"| {name} | {perplexity:F4} | {Math.Round((perplexity / baseline.Value - 1) * 100, 2) + 0.0:+0.00;-0.00;0.00}% | {topEqual}/{top.Length} ({100.0 * topEqual / top.Length:F1}%) | {identical}/{greedy.Count} | {(double)prefix / greedy.Count:F1} | {clock.Elapsed.TotalSeconds:F1} |"));
}

return 0;

// The greedy prompts: for each of the first `count` function definitions, the (up to) 6 lines before it and its own
// `def` line, so the model continues into the body.
static List<string> Prompts(string text, int count)
{
    var lines = text.Split('\n');
    var prompts = new List<string>();
    for (var i = 0; i < lines.Length && prompts.Count < count; i++)
    {
        if (lines[i].TrimStart().StartsWith("def ", StringComparison.Ordinal) && lines[i].TrimEnd().EndsWith(':'))
        {
            var first = Math.Max(0, i - 6);
            prompts.Add(string.Join('\n', lines[first..(i + 1)]) + "\n");
        }
    }

    return prompts;
}

static int ReadBos(string configPath)
{
    using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(configPath));
    return document.RootElement.TryGetProperty("bos_token_id", out var bos) && bos.ValueKind == System.Text.Json.JsonValueKind.Number ? bos.GetInt32() : 0;
}
