// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>The filters over sequences: sorting, grouping, selecting, mapping, aggregating.</summary>
internal static partial class Filters
{
    private static object? Batch(RenderState state, object? value, CallArgs args)
    {
        long size = PyOps.ToLong(args.Required(0, "linecount", "batch"));
        if (size <= 0)
        {
            throw ChatTemplateException.Runtime("ValueError: batch size must be positive");
        }

        bool fill = args.TryGet(1, "fill_with", out object? filler) && filler is not null;
        var batches = new List<object?>();
        List<object?>? current = null;
        foreach (object? item in PyOps.Iterate(value))
        {
            current ??= [];
            current.Add(item);
            if (current.Count == size)
            {
                batches.Add(new PyList(current));
                current = null;
            }
        }

        if (current is not null)
        {
            while (fill && current.Count < size)
            {
                current.Add(filler);
            }

            batches.Add(new PyList(current));
        }

        return new PyList(batches);
    }

    private static object? SliceFilter(RenderState state, object? value, CallArgs args)
    {
        int slices = PyOps.ToWidth(args.Required(0, "slices", "slice"));
        if (slices == 0)
        {
            throw ChatTemplateException.Runtime("ValueError: slice count must be positive");
        }

        bool fill = args.TryGet(1, "fill_with", out object? filler) && filler is not null;
        List<object?> seq = PyOps.Iterate(value);
        int perSlice = seq.Count / slices;
        int withExtra = seq.Count % slices;
        int offset = 0;
        var result = new List<object?>();
        for (int i = 0; i < slices; i++)
        {
            int start = offset + (i * perSlice);
            if (i < withExtra)
            {
                offset++;
            }

            int end = offset + ((i + 1) * perSlice);
            var part = seq.GetRange(start, end - start);
            if (fill && i >= withExtra)
            {
                part.Add(filler);
            }

            result.Add(new PyList(part));
        }

        return new PyList(result);
    }

    private static object? SortKey(object? item, string? attribute, bool caseSensitive)
    {
        object? key = attribute is null ? item : GetPath(item, attribute);
        return !caseSensitive && key is string s ? s.ToLowerInvariant() : key;
    }

    private static object? DictSort(RenderState state, object? value, CallArgs args)
    {
        if (value is not PyDict dict)
        {
            throw ChatTemplateException.Runtime("TypeError: dictsort needs a mapping");
        }

        bool caseSensitive = PyOps.IsTruthy(args.Get(0, "case_sensitive", false));
        string by = PyFormat.Str(args.Get(1, "by", "key"));
        bool reverse = PyOps.IsTruthy(args.Get(2, "reverse", false));
        int position = by switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw ChatTemplateException.Runtime("FilterArgumentError: You can only sort by either \"key\" or \"value\""),
        };
        var pairs = new List<object?>(dict.Count);
        for (int i = 0; i < dict.Count; i++)
        {
            pairs.Add(PyList.Pair(dict.KeyAt(i), dict.ValueAt(i)));
        }

        return new PyList(StableSort(pairs, p => SortKey(((PyList)p!)[position], null, caseSensitive), reverse));
    }

    private static object? Sort(RenderState state, object? value, CallArgs args)
    {
        bool reverse = PyOps.IsTruthy(args.Get(0, "reverse", false));
        bool caseSensitive = PyOps.IsTruthy(args.Get(1, "case_sensitive", false));
        string? attribute = args.Get(2, "attribute") is { } a ? PyFormat.Str(a) : null;
        return new PyList(StableSort(PyOps.Iterate(value), item => SortKey(item, attribute, caseSensitive), reverse));
    }

    private static List<object?> StableSort(List<object?> items, Func<object?, object?> key, bool reverse)
    {
        var keyed = new List<(object? Key, int Index, object? Item)>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            keyed.Add((key(items[i]), i, items[i]));
        }

        try
        {
            keyed.Sort((x, y) =>
            {
                int c = PyOps.Compare(x.Key, y.Key, "<");
                if (reverse)
                {
                    c = -c;
                }

                return c != 0 ? c : x.Index.CompareTo(y.Index);
            });
        }
        catch (InvalidOperationException ex) when (ex.InnerException is ChatTemplateException inner)
        {
            // List.Sort wraps what the comparison throws; surface the template error itself.
            throw inner;
        }
        var sorted = new List<object?>(keyed.Count);
        foreach ((object? _, int _, object? item) in keyed)
        {
            sorted.Add(item);
        }

        return sorted;
    }

    private static object? Unique(RenderState state, object? value, CallArgs args)
    {
        bool caseSensitive = PyOps.IsTruthy(args.Get(0, "case_sensitive", false));
        string? attribute = args.Get(1, "attribute") is { } a ? PyFormat.Str(a) : null;
        var seen = new PyDict();
        var result = new List<object?>();
        foreach (object? item in PyOps.Iterate(value))
        {
            object? key = SortKey(item, attribute, caseSensitive);
            PyOps.ThrowIfUnhashable(key);
            if (!seen.ContainsKey(key))
            {
                seen.Set(key, null);
                result.Add(item);
            }
        }

        return new PyList(result);
    }

    private static object? MinMax(object? value, CallArgs args, bool max)
    {
        bool caseSensitive = PyOps.IsTruthy(args.Get(0, "case_sensitive", false));
        string? attribute = args.Get(1, "attribute") is { } a ? PyFormat.Str(a) : null;
        List<object?> items = PyOps.Iterate(value);
        if (items.Count == 0)
        {
            return new Undefined("No aggregated item, sequence was empty.");
        }

        object? best = items[0];
        object? bestKey = SortKey(best, attribute, caseSensitive);
        for (int i = 1; i < items.Count; i++)
        {
            object? key = SortKey(items[i], attribute, caseSensitive);
            int c = PyOps.Compare(key, bestKey, max ? ">" : "<");
            if (max ? c > 0 : c < 0)
            {
                best = items[i];
                bestKey = key;
            }
        }

        return best;
    }

    private static object? Sum(RenderState state, object? value, CallArgs args)
    {
        string? attribute = args.Get(0, "attribute") is { } a ? PyFormat.Str(a) : null;
        object? total = args.Get(1, "start", 0L);
        foreach (object? item in PyOps.Iterate(value))
        {
            total = PyOps.Add(total, attribute is null ? item : GetPath(item, attribute));
        }

        return total;
    }

    private static object? Map(RenderState state, object? value, CallArgs args)
    {
        // Jinja2's map and select start with `if value:`; a falsy value maps to nothing without being iterated.
        List<object?> items = PyOps.IsTruthy(value) ? PyOps.Iterate(value) : [];
        var result = new List<object?>(items.Count);
        if (args.Count == 0 && args.TryGet(-1, "attribute", out object? attribute))
        {
            bool hasDefault = args.TryGet(-1, "default", out object? fallback);
            string path = PyFormat.Str(attribute);
            foreach (object? item in items)
            {
                object? mapped = GetPath(item, path);
                result.Add(hasDefault && mapped is Undefined ? fallback : mapped);
            }

            return new PyList(result);
        }

        string name = args.Count > 0 ? PyFormat.Str(args.Positional[0]) : throw ChatTemplateException.Runtime("FilterArgumentError: map requires a filter argument");
        if (!ByName.TryGetValue(name, out FilterFunction? filter))
        {
            throw ChatTemplateException.Runtime($"TemplateRuntimeError: No filter named '{name}'.");
        }

        CallArgs rest = args.Skip(1);
        foreach (object? item in items)
        {
            result.Add(filter(state, item, rest));
        }

        return new PyList(result);
    }

    private static object? Select(RenderState state, object? value, CallArgs args, bool byAttribute, bool keep)
    {
        int skip = 0;
        string? attribute = null;
        if (byAttribute)
        {
            attribute = PyFormat.Str(args.Required(0, "attribute", keep ? "selectattr" : "rejectattr"));
            skip = 1;
        }

        TestFunction? test = null;
        CallArgs testArgs = CallArgs.Empty;
        if (args.Count > skip)
        {
            string name = PyFormat.Str(args.Positional[skip]);
            if (!Tests.ByName.TryGetValue(name, out test))
            {
                throw ChatTemplateException.Runtime($"TemplateRuntimeError: No test named '{name}'.");
            }

            testArgs = args.Skip(skip + 1);
        }

        var result = new List<object?>();
        foreach (object? item in PyOps.IsTruthy(value) ? PyOps.Iterate(value) : [])
        {
            object? subject = attribute is null ? item : GetPath(item, attribute);
            bool passed = test is null ? PyOps.IsTruthy(subject) : test(state, subject, testArgs);
            if (passed == keep)
            {
                result.Add(item);
            }
        }

        return new PyList(result);
    }

    private static object? GroupBy(RenderState state, object? value, CallArgs args)
    {
        string attribute = PyFormat.Str(args.Required(0, "attribute", "groupby"));
        object? fallback = args.Get(1, "default");
        bool caseSensitive = PyOps.IsTruthy(args.Get(2, "case_sensitive", false));
        object? KeyOf(object? item)
        {
            object? key = GetPath(item, attribute);
            if (key is Undefined && fallback is not null)
            {
                key = fallback;
            }

            return !caseSensitive && key is string s ? s.ToLowerInvariant() : key;
        }

        List<object?> sorted = StableSort(PyOps.Iterate(value), KeyOf, reverse: false);
        var groups = new List<object?>();
        int i = 0;
        while (i < sorted.Count)
        {
            object? key = KeyOf(sorted[i]);
            var members = new List<object?>();
            while (i < sorted.Count && PyOps.AreEqual(KeyOf(sorted[i]), key))
            {
                members.Add(sorted[i++]);
            }

            // Like Jinja2, the group's key is the first member's own value, not its lower-cased form.
            object? shownKey = GetPath(members[0], attribute);
            groups.Add(PyList.Pair(shownKey is Undefined && fallback is not null ? fallback : shownKey, new PyList(members)));
        }

        return new PyList(groups);
    }
}
