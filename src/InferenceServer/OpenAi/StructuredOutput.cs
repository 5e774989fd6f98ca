// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Structured;

namespace InferenceServer.OpenAi;

/// <summary>
/// Turns a request's <c>response_format</c> (or a tool-call schema) into per-choice token constraints: the schema is
/// compiled once per request, on the request's thread before admission (never on the engine loop), under
/// <see cref="SchemaLimits.Default"/>: an unsupported schema is a 400 naming the keyword, one over a limit (size,
/// nesting, compiled size, union expansion, compile time) a 400 naming the limit (code <c>schema_limit_exceeded</c>).
/// The model's vocabulary is built once per process, on first use.
/// </summary>
internal sealed class StructuredOutput
{
    /// <summary>The OpenAI error <c>code</c> of a schema over one of the <see cref="SchemaLimits"/>.</summary>
    public const string SchemaLimitCode = "schema_limit_exceeded";

    private readonly ServedModel _model;
    private readonly Lazy<TokenVocabulary?> _vocabulary;

    /// <summary>Creates the service for <paramref name="model"/>.</summary>
    public StructuredOutput(ServedModel model)
    {
        _model = model;
        _vocabulary = new Lazy<TokenVocabulary?>(() => BuildVocabulary(model), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The constraint factory for <paramref name="format"/>, or null for free text.</summary>
    /// <exception cref="RequestValidationException">The schema cannot be enforced, or the model has no tokenizer.</exception>
    public Func<ITokenConstraint>? CreateFactory(ResponseFormat format)
    {
        if (!format.IsJson)
        {
            return null;
        }

        return CreateFactory(format.Schema, format.Strict, "response_format.json_schema.schema");
    }

    /// <summary>The constraint factory for <paramref name="schema"/> (null: any JSON object); errors name <paramref name="param"/>.</summary>
    public Func<ITokenConstraint> CreateFactory(System.Text.Json.JsonElement? schema, bool strict, string param)
    {
        var vocabulary = _vocabulary.Value
            ?? throw new RequestValidationException(param, $"Structured output needs the model's tokenizer, and the model '{_model.Name}' has none.");
        JsonGrammar grammar;
        try
        {
            grammar = schema is { } s ? JsonGrammar.FromSchema(s, strict) : JsonGrammar.AnyObject;
        }
        catch (SchemaLimitExceededException ex)
        {
            throw new RequestValidationException(param, ex.Message, code: SchemaLimitCode);
        }
        catch (SchemaNotSupportedException ex)
        {
            throw new RequestValidationException(param, $"The JSON schema cannot be enforced: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            throw new RequestValidationException(param, $"The JSON schema is not usable: {ex.Message}");
        }

        return () => new Constraint(new JsonTokenConstraint(grammar, vocabulary));
    }

    private static TokenVocabulary? BuildVocabulary(ServedModel model)
    {
        if (model.Tokenizer is not { } tokenizer)
        {
            return null;
        }

        var bytes = new byte[]?[model.Spec.VocabularySize];
        for (var id = 0; id < bytes.Length; id++)
        {
            if (!tokenizer.IsSpecial(id) && tokenizer.TryGetTokenBytes(id, out var tokenBytes) && tokenBytes.Length > 0)
            {
                bytes[id] = tokenBytes.ToArray();
            }
        }

        var eos = new List<int>();
        foreach (var id in model.EosTokenIds)
        {
            if (id >= 0 && id < bytes.Length)
            {
                eos.Add(id);
            }
        }

        return new TokenVocabulary(bytes, eos);
    }

    /// <summary>The engine's view of a JSON constraint.</summary>
    private sealed class Constraint(JsonTokenConstraint inner) : ITokenConstraint
    {
        public void MaskLogits(Span<float> logits) => inner.MaskLogits(logits);

        public bool Accept(int tokenId) => inner.Accept(tokenId);

        public bool IsTerminated => inner.IsEnded;
    }
}
