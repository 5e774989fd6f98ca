// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Bench;
using InferenceServer.GenAiBaseline;
using Microsoft.ML.OnnxRuntimeGenAI;

const string Usage = """
    usage: InferenceServer.GenAiBaseline [options]
      --model-dir DIR        Hugging Face style model folder with model.onnx (default: models/tiny-pycoder above the working directory)
      --work-dir DIR         where the genai model folder is assembled (default: /tmp/genai-<model folder name>)
      --concurrency C        batch size (default 1); --sweep 1,4,16,64 runs several
      --num-prompts N        prompts per level (default: max(8, 2 * C))
      --input-len N          prompt tokens (default 128)
      --output-len N         generated tokens (default 128)
      --vocab V              prompt ids are drawn from [10, V) (default 4096)
      --seed S               prompt seed (default 0)
      --max-batch-size N     largest batch onnxruntime-genai takes (default 32, its limit in 0.18); higher concurrencies run batches of N in turn
      --warmup N             warm-up batches of one prompt before measuring (default 1)
      --json FILE            also write the results as JSON
      --skip-check           skip the greedy check against reference.json
    """;

CommandLine options;
try
{
    options = new CommandLine(
        args,
        ["model-dir", "work-dir", "concurrency", "sweep", "num-prompts", "input-len", "output-len", "vocab", "seed", "warmup", "max-batch-size", "json"],
        ["skip-check", "help"]);
}
catch (FormatException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}\n{Usage}");
    return 2;
}

if (options.Has("help"))
{
    Console.WriteLine(Usage);
    return 0;
}

var modelDir = options.String("model-dir") ?? FindDefaultModel();
var workDir = options.String("work-dir") ?? Path.Combine(Path.GetTempPath(), "genai-" + Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir))));
var levels = options.IntList("sweep") ?? [options.Int("concurrency", 1, 1)];
var inputLength = options.Int("input-len", 128, 1);
var outputLength = options.Int("output-len", 128, 1);
var vocab = options.Int("vocab", 4096, PromptSet.FirstId + 1);
var seed = options.Int("seed", 0);
var maxBatch = options.Int("max-batch-size", 32, 1);

Console.WriteLine($"onnxruntime-genai static batching: model {Path.GetFullPath(modelDir)} (genai folder {workDir})");
GenAiModelFolder.Prepare(modelDir, workDir);
var load = Stopwatch.GetTimestamp();
using var model = new Model(workDir);
Console.WriteLine($"model loaded in {Stopwatch.GetElapsedTime(load).TotalSeconds:F2} s (type {model.GetModelType()})");

var referencePath = Path.Combine(modelDir, "reference.json");
var checkFailed = false;
if (!options.Has("skip-check") && File.Exists(referencePath))
{
    var reference = ReferenceCase.Load(referencePath);
    var output = StaticBatch.Run(model, [reference.Prompt], reference.Greedy.Length, ignoreEos: false).Outputs[0];
    Console.WriteLine($"greedy check (reference.json case 0, {reference.Prompt.Length} prompt tokens): {reference.Verdict(output, out var match)}");
    checkFailed = !match;
}

for (var i = 0; i < options.Int("warmup", 1); i++)
{
    var warm = PromptSet.Create(seed, -1 - i, 1, inputLength, Math.Min(outputLength, 16), 0, vocab);
    StaticBatch.Run(model, warm.Prompts, warm.OutputLengths[0], ignoreEos: true);
}

var results = new List<LevelResult>();
foreach (var concurrency in levels)
{
    var count = options.Int("num-prompts", Math.Max(8, 2 * concurrency), 1);
    var prompts = PromptSet.Create(seed, concurrency, count, inputLength, outputLength, 0, vocab);
    var batchSize = Math.Min(concurrency, maxBatch);
    var samples = new List<RequestSample>();
    var duration = 0.0;
    for (var first = 0; first < count; first += batchSize)
    {
        var batch = prompts.Prompts.Skip(first).Take(batchSize).ToArray();
        var result = StaticBatch.Run(model, batch, outputLength, ignoreEos: true);
        duration += result.E2eMs / 1000;
        foreach (var output in result.Outputs)
        {
            // Every row of a static batch sees the batch's times; each step is one inter-token gap for each row.
            samples.Add(new RequestSample(inputLength, output.Length, result.TtftMs, result.E2eMs, result.StepMs));
        }
    }

    var level = LevelResult.From(concurrency, null, samples, 0, duration);
    results.Add(level);
    var capped = batchSize < concurrency ? $" (batches of {batchSize}: onnxruntime-genai's largest)" : string.Empty;
    Console.WriteLine($"concurrency {concurrency}: {count} prompts{capped} in {duration:F2} s, {level.OutputThroughput:F1} output tok/s");
}

Console.WriteLine();
Console.WriteLine($"onnxruntime-genai (static batches), input {inputLength}, output {outputLength}");
Console.Write(results.Count == 1 ? ResultTable.Detail(results[0]) : ResultTable.Summary(results));
if (options.String("json") is { } json)
{
    ResultTable.Write(json, new RunReport("onnxruntime-genai", Path.GetFullPath(modelDir), inputLength, outputLength, 0, seed, results));
}

return checkFailed ? 1 : 0;

static string FindDefaultModel()
{
    for (var directory = new DirectoryInfo(Directory.GetCurrentDirectory()); directory is not null; directory = directory.Parent)
    {
        var candidate = Path.Combine(directory.FullName, "models", "tiny-pycoder");
        if (File.Exists(Path.Combine(candidate, "model.onnx")))
        {
            return candidate;
        }
    }

    throw new DirectoryNotFoundException("models/tiny-pycoder was not found above the working directory; pass --model-dir");
}
