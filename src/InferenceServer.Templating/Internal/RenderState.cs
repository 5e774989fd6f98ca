// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>The state of one render: the output being written, the clock, and the guards against runaway templates.</summary>
internal sealed class RenderState
{
    private long _iterations;

    /// <summary>Starts a render under <paramref name="options"/>.</summary>
    public RenderState(ChatTemplateOptions options)
    {
        Options = options;
        Output = new StringBuilder(1024);
    }

    /// <summary>The limits and the clock.</summary>
    public ChatTemplateOptions Options { get; }

    /// <summary>Where text goes (swapped for a fresh builder while a macro, set block or filter block captures).</summary>
    public StringBuilder Output { get; set; }

    /// <summary>The current macro call depth.</summary>
    public int CallDepth { get; set; }

    /// <summary>The current <c>for</c> nesting depth.</summary>
    public int LoopDepth { get; set; }

    /// <summary>Appends <paramref name="text"/> to the output, enforcing the output size limit.</summary>
    public void Write(string text)
    {
        if (Output.Length + text.Length > Options.MaxOutputLength)
        {
            throw ChatTemplateException.Limit($"the template produced more than {Options.MaxOutputLength} characters");
        }

        Output.Append(text);
    }

    /// <summary>Counts one loop iteration, enforcing the iteration limit.</summary>
    public void CountIteration()
    {
        if (++_iterations > Options.MaxLoopIterations)
        {
            throw ChatTemplateException.Limit($"the template ran more than {Options.MaxLoopIterations} loop iterations");
        }
    }
}
