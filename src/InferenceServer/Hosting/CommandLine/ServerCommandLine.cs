// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Hosting.CommandLine;

/// <summary>
/// The server's command line checked against <see cref="ServerFlags"/>: every word is a known flag, its value, an
/// ASP.NET Core host key (<c>--urls</c>, <c>--environment</c>) or a configuration path (<c>--Logging:LogLevel:Default</c>).
/// The result is the configuration it sets, in <c>--key=value</c> form for ASP.NET Core's command-line provider.
/// </summary>
internal sealed class ServerCommandLine
{
    private ServerCommandLine(IReadOnlyDictionary<string, string> values, bool help, bool version)
    {
        Values = values;
        Help = help;
        Version = version;
    }

    /// <summary>The configuration keys and values the command line sets (flag names as keys, repeatable values comma-joined).</summary>
    public IReadOnlyDictionary<string, string> Values { get; }

    /// <summary><c>--help</c> or <c>-h</c> was given.</summary>
    public bool Help { get; }

    /// <summary><c>--version</c> was given.</summary>
    public bool Version { get; }

    /// <summary>The arguments for <c>WebApplication.CreateBuilder</c>: one <c>--key=value</c> per value.</summary>
    public string[] ToConfigurationArgs()
    {
        var args = new string[Values.Count];
        var i = 0;
        foreach (var (key, value) in Values)
        {
            args[i++] = "--" + key + "=" + value;
        }

        return args;
    }

    /// <summary>Parses <paramref name="args"/>; throws <see cref="StartupException"/> naming the bad word and the closest flag.</summary>
    public static ServerCommandLine Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var repeated = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        bool help = false, version = false;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h")
            {
                help = true;
                continue;
            }

            if (arg == "--version")
            {
                version = true;
                continue;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new StartupException(arg.StartsWith('-')
                    ? $"unknown option {arg}{Suggest(arg.TrimStart('-'))}; --help lists the options"
                    : $"unexpected argument '{arg}': options are --name value (commands: build, inspect, rewrite, bench); --help lists them");
            }

            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            var name = equals < 0 ? arg[2..] : arg[2..equals];
            var inline = equals < 0 ? null : arg[(equals + 1)..];
            if (name.Contains(':', StringComparison.Ordinal) || IsHostKey(name))
            {
                values[name] = inline ?? TakeValue(args, ref i, "--" + name, "a value");
                continue;
            }

            var flag = ServerFlags.Find(name);
            if (flag is null && name.StartsWith("no-", StringComparison.OrdinalIgnoreCase) && ServerFlags.Find(name[3..]) is { Kind: FlagKind.Bool } negated)
            {
                if (inline is not null)
                {
                    throw new StartupException($"--{name} takes no value; use --{negated.Name} {inline}");
                }

                values[negated.Name] = "false";
                continue;
            }

            if (flag is null)
            {
                throw new StartupException($"unknown option --{name}{Suggest(name)}; --help lists the options");
            }

            switch (flag.Kind)
            {
                case FlagKind.Bool:
                    var text = inline ?? (i + 1 < args.Count && bool.TryParse(args[i + 1], out _) ? args[++i] : "true");
                    values[flag.Name] = bool.TryParse(text, out var on)
                        ? (on ? "true" : "false")
                        : throw new StartupException($"--{flag.Name} must be true or false (or given alone for true), not '{text}'");
                    break;
                case FlagKind.Repeatable:
                    if (!repeated.TryGetValue(flag.Name, out var list))
                    {
                        repeated[flag.Name] = list = [];
                    }

                    AddItems(list, inline ?? TakeValue(args, ref i, "--" + flag.Name, "at least one value"));
                    while (inline is null && i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    {
                        AddItems(list, args[++i]);
                    }

                    values[flag.Name] = string.Join(',', list);
                    break;
                default:
                    var value = inline ?? TakeValue(args, ref i, "--" + flag.Name, Describe(flag));
                    Check(flag, value);
                    values[flag.Name] = value;
                    break;
            }
        }

        ListenAddress(values);
        return new ServerCommandLine(values, help, version);
    }

    /// <summary>vLLM's <c>--host</c> and <c>--port</c> become ASP.NET Core's <c>urls</c>; both with <c>--urls</c> is an error.</summary>
    private static void ListenAddress(Dictionary<string, string> values)
    {
        var host = values.GetValueOrDefault("host");
        var port = values.GetValueOrDefault("port");
        if (host is null && port is null)
        {
            return;
        }

        if (values.ContainsKey("urls"))
        {
            throw new StartupException("--urls and --host/--port both set the listen address; give --urls or --host/--port");
        }

        if (port is not null && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > 65535))
        {
            throw new StartupException($"--port must be a port number in [0, 65535] (0 picks a free one), not '{port}'");
        }

        host = string.IsNullOrWhiteSpace(host) ? "localhost" : host.Trim();
        if (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('['))
        {
            host = "[" + host + "]";
        }

        values["urls"] = $"http://{host}:{port ?? "5000"}";
        values.Remove("host");
        values.Remove("port");
    }

    /// <summary>The known flag nearest to <paramref name="name"/> by edit distance, as <c>" (did you mean --x?)"</c>, or empty.</summary>
    internal static string Suggest(string name)
    {
        FlagDefinition? best = null;
        var bestDistance = int.MaxValue;
        foreach (var flag in ServerFlags.All)
        {
            var distance = EditDistance(name.ToLowerInvariant(), flag.Name);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (flag, distance);
            }
        }

        return best is not null && bestDistance <= Math.Max(2, name.Length / 3) ? $" (did you mean --{best.Name}?)" : string.Empty;
    }

    /// <summary>Levenshtein distance: insertions, deletions and substitutions of one character.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private static bool IsHostKey(string name)
    {
        foreach (var key in ServerFlags.HostKeys)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static string TakeValue(IReadOnlyList<string> args, ref int i, string flag, string what)
    {
        if (i + 1 >= args.Count || (args[i + 1].StartsWith("--", StringComparison.Ordinal) && args[i + 1].Length > 2))
        {
            throw new StartupException($"{flag} needs {what}" + (i + 1 < args.Count ? $", not the option {args[i + 1]}" : " (it is the last word)"));
        }

        return args[++i];
    }

    private static void AddItems(List<string> list, string text)
    {
        foreach (var item in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            list.Add(item);
        }
    }

    private static string Describe(FlagDefinition flag) => flag.Kind switch
    {
        FlagKind.Int => "a whole number",
        FlagKind.Size => "a size (bytes, or with a k/m/g suffix)",
        FlagKind.Sizes => "a size (bytes, or with a k/m/g suffix), or one per --attention-device separated by commas",
        FlagKind.Seconds => "a number of seconds",
        FlagKind.Fraction => "a fraction in (0, 1]",
        FlagKind.Enum => "one of " + string.Join(", ", flag.Values),
        _ => "a value",
    };

    private static void Check(FlagDefinition flag, string value)
    {
        var ok = flag.Kind switch
        {
            FlagKind.Int => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out _),
            FlagKind.Seconds => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds) && seconds >= 0,
            FlagKind.Fraction => double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var fraction) && fraction is > 0 and <= 1,
            // 0 is a size where a flag means "off" (--host-kv-cache-memory); the binder refuses it elsewhere.
            FlagKind.Size => value.Trim() == "0" || SizeText.TryParse(value, out _),
            FlagKind.Sizes => value.Split(',').All(static part => SizeText.TryParse(part.Trim(), out _)),
            FlagKind.Enum => Contains(flag.Values, value),
            _ => value.Length > 0,
        };
        if (!ok)
        {
            throw new StartupException($"--{flag.Name} needs {Describe(flag)}, not '{value}'");
        }
    }

    private static bool Contains(IReadOnlyList<string> values, string value)
    {
        foreach (var candidate in values)
        {
            if (string.Equals(candidate, value.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
