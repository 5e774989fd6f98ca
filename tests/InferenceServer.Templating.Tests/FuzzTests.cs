// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;
using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>Random token soups: parsing and rendering either succeed or fail with a <see cref="ChatTemplateException"/> of the engine's own making.</summary>
public class FuzzTests
{
    private static readonly string[] Vocabulary =
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", " ", "\n", "  ", "text",
        "if", "elif", "else", "endif", "for", "in", "endfor", "set", "endset", "macro", "endmacro", "call", "endcall",
        "filter", "endfilter", "with", "endwith", "raw", "endraw", "break", "continue", "generation", "endgeneration",
        "x", "m", "messages", "loop", "ns", "namespace(", "range(", "dict(", "raise_exception(", "caller(",
        "'s'", "\"t\"", "1", "0", "-1", "2.5", "1e3", "none", "true", "false",
        "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "=", "==", "!=", "<", ">", "+", "-", "*", "/", "//", "%", "**", "~",
        "and", "or", "not", "is", "defined", "none", "mapping", "string", "odd", "equalto",
        "trim", "tojson", "length", "join", "default", "items", "map", "selectattr", "first", "last", "sort", "unique",
        "batch", "slice", "center", "indent", "format", "int", "float", "round", "abs", "reverse", "list", "string",
        "role", "content", "index0", "last", "items()", "split(", "strip()", "upper()", "get(", "cycle(",
    ];

    [Fact]
    public void RandomTemplates_FailOnlyWithTemplateErrors()
    {
        var random = new Random(20240726);
        JsonElement messages = JsonDocument.Parse("""[{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "t"}]}]""").RootElement;
        var options = new ChatTemplateOptions { MaxLoopIterations = 10_000, MaxOutputLength = 100_000 };
        int rendered = 0;
        for (int i = 0; i < 20_000; i++)
        {
            var sb = new StringBuilder();
            int length = random.Next(1, 24);
            for (int j = 0; j < length; j++)
            {
                sb.Append(Vocabulary[random.Next(Vocabulary.Length)]).Append(random.Next(3) == 0 ? " " : string.Empty);
            }

            string source = sb.ToString();
            try
            {
                ChatTemplate template = ChatTemplate.Parse(source);
                var context = new ChatTemplateContext(options).Set("messages", messages).Set("x", 3L).Set("m", messages[0]);
                template.Render(context);
                rendered++;
            }
            catch (ChatTemplateException ex)
            {
                Assert.False(ex.Message.Contains("internal error", StringComparison.Ordinal), $"{source} -> {ex.Message}\n{ex.InnerException}");
            }
        }

        Assert.True(rendered > 1000, $"only {rendered} of the random templates rendered");
    }

    [Fact]
    public void MutatedRealTemplates_FailOnlyWithTemplateErrors()
    {
        var random = new Random(7);
        var options = new ChatTemplateOptions { MaxLoopIterations = 10_000, MaxOutputLength = 100_000 };
        string[] families = TemplateFixtures.Families();
        int rendered = 0;
        for (int i = 0; i < 3000; i++)
        {
            string family = families[i % families.Length];
            JsonElement renderings = TemplateFixtures.Renderings(family);
            JsonElement conversation = renderings.GetProperty("renderings")[random.Next(6)];
            var source = new StringBuilder(TemplateFixtures.Template(family));
            for (int m = random.Next(1, 4); m > 0; m--)
            {
                int at = random.Next(source.Length);
                int span = Math.Min(random.Next(1, 12), source.Length - at);
                switch (random.Next(3))
                {
                    case 0:
                        source.Remove(at, span);
                        break;
                    case 1:
                        source.Insert(random.Next(source.Length), source.ToString(at, span));
                        break;
                    default:
                        source.Insert(at, Vocabulary[random.Next(Vocabulary.Length)]);
                        break;
                }
            }

            try
            {
                ChatTemplateSet set = ChatTemplateSet.FromTemplateText(source.ToString(), TemplateFixtures.ConfigJson(renderings), options);
                JsonElement kwargs = conversation.GetProperty("kwargs");
                set.Render(conversation.GetProperty("messages"), kwargs.GetProperty("add_generation_prompt").GetBoolean(), kwargs.TryGetProperty("tools", out JsonElement t) ? t : null);
                rendered++;
            }
            catch (ChatTemplateException ex)
            {
                Assert.False(ex.Message.Contains("internal error", StringComparison.Ordinal), $"{source} -> {ex.Message}\n{ex.InnerException}");
            }
        }

        Assert.True(rendered > 300, $"only {rendered} of the mutated templates rendered");
    }
}
