using System.Globalization;
using System.Text.RegularExpressions;
using Grpc.Core;
using InferenceServer.Engine;
using InferenceServer.Grpc;
using InferenceServer.Grpc.V1;
using InferenceServer.OpenAi;

namespace InferenceServer.Tests.Grpc;

/// <summary>
/// Keeps the ranges that proto/inference/v1/inference.proto's comments give clients equal to what
/// <see cref="GenerateRequestMapper"/> enforces: each documented range is compared with the mapper's constants, and the
/// mapper is probed at and just past each documented bound.
/// </summary>
public sealed partial class ProtoRangeDocumentationTests : IClassFixture<ProtoRangeDocumentationTests.ModelFixture>
{
    private readonly ServedModel _model;

    /// <summary>Creates the tests over the shared tiny model.</summary>
    public ProtoRangeDocumentationTests(ModelFixture fixture) => _model = fixture.Model;

    /// <summary>Every SamplingParameters field whose range the mapper checks, with the mapper's limits.</summary>
    public static TheoryData<string, double, bool, double, bool, bool> CheckedFields => new()
    {
        // field, min, min inclusive, max, max inclusive, integral
        { "temperature", GenerateRequestMapper.MinTemperature, true, GenerateRequestMapper.MaxTemperature, true, false },
        { "top_p", 0, false, GenerateRequestMapper.MaxTopP, true, false },
        { "min_p", GenerateRequestMapper.MinMinP, true, GenerateRequestMapper.MaxMinP, true, false },
        { "presence_penalty", GenerateRequestMapper.MinPenalty, true, GenerateRequestMapper.MaxPenalty, true, false },
        { "frequency_penalty", GenerateRequestMapper.MinPenalty, true, GenerateRequestMapper.MaxPenalty, true, false },
        { "repetition_penalty", GenerateRequestMapper.MinRepetitionPenalty, true, GenerateRequestMapper.MaxRepetitionPenalty, true, false },
        { "logit_bias", GenerateRequestMapper.MinLogitBias, true, GenerateRequestMapper.MaxLogitBias, true, false },
        { "n", 1, true, GenerationSettings.MaxN, true, true },
        { "top_logprobs", 0, true, GenerateRequestMapper.MaxTopLogprobs, true, true },
    };

    [Theory]
    [MemberData(nameof(CheckedFields))]
    public void DocumentedRange_EqualsMapperLimits(string field, double min, bool minInclusive, double max, bool maxInclusive, bool integral)
    {
        _ = integral;
        var range = DocumentedRange("SamplingParameters", field);
        Assert.True(range is not null, $"SamplingParameters.{field}'s comment in inference.proto states no range \"in [a, b]\".");
        Assert.Equal((min, minInclusive, max, maxInclusive), range.Value);
    }

    [Theory]
    [MemberData(nameof(CheckedFields))]
    public void DocumentedBounds_AreWhereTheMapperAcceptsAndRefuses(string field, double min, bool minInclusive, double max, bool maxInclusive, bool integral)
    {
        _ = (min, minInclusive, max, maxInclusive);
        var (docMin, docMinInclusive, docMax, docMaxInclusive) = DocumentedRange("SamplingParameters", field)!.Value;
        var step = integral ? 1 : 1e-3 * Math.Max(1, Math.Abs(docMax));
        var lowStep = integral ? 1 : 1e-3 * Math.Max(1, Math.Abs(docMin));

        if (docMaxInclusive)
        {
            Map(field, docMax);
        }

        AssertRefused(field, docMaxInclusive ? docMax + step : docMax);
        if (docMinInclusive)
        {
            Map(field, docMin);
        }
        else
        {
            AssertRefused(field, docMin);
            Map(field, docMin + lowStep);
        }

        // Unsigned fields cannot go below their lowest value (and n = 0 means "absent").
        if (!integral && docMinInclusive)
        {
            AssertRefused(field, docMin - lowStep);
        }
    }

    [Fact]
    public void EveryDocumentedSamplingRange_IsChecked()
    {
        var checkedFields = CheckedFields.Select(row => (string)row[0]).ToHashSet();
        foreach (var field in FieldComments("SamplingParameters"))
        {
            if (RangePattern().IsMatch(field.Comment))
            {
                Assert.Contains(field.Name, checkedFields);
            }
        }
    }

    [Fact]
    public void TopK_DocumentedRange_IsMinusOneToVocabulary()
    {
        var comment = FieldComments("SamplingParameters").Single(f => f.Name == "top_k").Comment;
        Assert.Contains("in [-1, vocabulary size]", comment, StringComparison.Ordinal);
        var vocab = _model.Spec.VocabularySize;
        Map("top_k", vocab);
        Map("top_k", -1);
        AssertRefused("top_k", vocab + 1);
        AssertRefused("top_k", -2);
    }

    [Fact]
    public void StopStrings_DocumentedCount_EqualsMapperLimit()
    {
        var comment = FieldComments("StopConditions").Single(f => f.Name == "stop").Comment;
        var match = Regex.Match(comment, @"Up to (\d+) ");
        Assert.True(match.Success, "StopConditions.stop's comment states no \"Up to N\".");
        Assert.Equal(GenerateRequestMapper.MaxStopStrings, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    private void Map(string field, double value) => GenerateRequestMapper.Map(Request(field, value), _model);

    private void AssertRefused(string field, double value)
    {
        var error = Assert.Throws<RpcException>(() => GenerateRequestMapper.Map(Request(field, value), _model));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("sampling." + field, error.Status.Detail, StringComparison.Ordinal);
    }

    private static GenerateRequest Request(string field, double value)
    {
        var sampling = new SamplingParameters();
        switch (field)
        {
            case "temperature": sampling.Temperature = value; break;
            case "top_p": sampling.TopP = value; break;
            case "top_k": sampling.TopK = (int)value; break;
            case "min_p": sampling.MinP = value; break;
            case "presence_penalty": sampling.PresencePenalty = value; break;
            case "frequency_penalty": sampling.FrequencyPenalty = value; break;
            case "repetition_penalty": sampling.RepetitionPenalty = value; break;
            case "logit_bias": sampling.LogitBias[0] = (float)value; break;
            case "n": sampling.N = checked((uint)value); break;
            case "top_logprobs": sampling.Logprobs = true; sampling.TopLogprobs = checked((uint)value); break;
            default: throw new ArgumentOutOfRangeException(nameof(field), field, "no setter in this test");
        }

        return new GenerateRequest { Text = "x = 1", Sampling = sampling, Stop = new StopConditions { MaxTokens = 1 } };
    }

    private static (double Min, bool MinInclusive, double Max, bool MaxInclusive)? DocumentedRange(string message, string field)
    {
        var comment = FieldComments(message).Single(f => f.Name == field).Comment;
        var matches = RangePattern().Matches(comment);
        if (matches.Count == 0)
        {
            return null;
        }

        Assert.True(matches.Count == 1, $"{message}.{field}'s comment states {matches.Count} ranges: {comment}");
        var m = matches[0];
        return (double.Parse(m.Groups["min"].Value, CultureInfo.InvariantCulture), m.Groups["open"].Value == "[",
            double.Parse(m.Groups["max"].Value, CultureInfo.InvariantCulture), m.Groups["close"].Value == "]");
    }

    /// <summary>The fields of one message of inference.proto, each with the comment lines directly above it.</summary>
    private static List<(string Name, string Comment)> FieldComments(string message)
    {
        var lines = File.ReadAllLines(ProtoPath());
        var start = Array.FindIndex(lines, l => l.StartsWith($"message {message} {{", StringComparison.Ordinal));
        Assert.True(start >= 0, $"inference.proto has no message {message}.");
        var fields = new List<(string, string)>();
        var comment = new List<string>();
        for (var i = start + 1; i < lines.Length && lines[i] != "}"; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("//", StringComparison.Ordinal))
            {
                comment.Add(line[2..].Trim());
                continue;
            }

            var field = FieldPattern().Match(line);
            if (field.Success)
            {
                fields.Add((field.Groups["name"].Value, string.Join(' ', comment)));
            }

            comment.Clear();
        }

        return fields;
    }

    private static string ProtoPath()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var path = Path.Combine(d.FullName, "proto", "inference", "v1", "inference.proto");
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new InvalidOperationException("proto/inference/v1/inference.proto not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"in (?<open>[\[(])(?<min>-?\d+(?:\.\d+)?), (?<max>-?\d+(?:\.\d+)?)(?<close>[\])])")]
    private static partial Regex RangePattern();

    [GeneratedRegex(@"^(?:optional |repeated )?(?:map<[^>]+>|[\w.]+) (?<name>\w+) = \d+;")]
    private static partial Regex FieldPattern();

    /// <summary>The tiny model the mapper checks against (its vocabulary and context).</summary>
    public sealed class ModelFixture : IDisposable
    {
        /// <summary>models/tiny-pycoder, loaded once for the class.</summary>
        public ServedModel Model { get; } = ServedModel.Load(Path.Combine(Path.GetDirectoryName(ProtoPath())!, "..", "..", "..", "models", "tiny-pycoder"));

        /// <inheritdoc />
        public void Dispose() => Model.Dispose();
    }
}
