// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating;

/// <summary>The clock and the guards a render runs under.</summary>
public sealed class ChatTemplateOptions
{
    /// <summary>The defaults: the system clock, 1,000,000 loop iterations, 16 Mi characters of output, macro calls 64 deep.</summary>
    public static ChatTemplateOptions Default { get; } = new();

    /// <summary>The clock <c>strftime_now</c> reads (local time, as Python's <c>datetime.now()</c>). Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The most loop iterations one render may run, over all loops. Default: 1,000,000.</summary>
    internal long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>The most characters one render (or one captured block) may produce. Default: 16,777,216.</summary>
    internal int MaxOutputLength { get; init; } = 16 * 1024 * 1024;

    /// <summary>How deep macro calls may nest (recursion guard). Default: 64.</summary>
    internal int MaxCallDepth { get; init; } = 64;
}
