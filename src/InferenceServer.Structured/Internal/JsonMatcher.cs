// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// The byte-level pushdown automaton of one grammar: steps a <see cref="MatchState"/> by one byte into zero or more
/// successor states (more than one only where <c>anyOf</c> alternatives are still ambiguous). Containers push an
/// interned <see cref="Frame"/> for "after this value" and values pop back to it. Numbers and literals that may still
/// grow end lazily: a byte that cannot continue them is fed to the parent. One instance per sequence: the frame
/// table is not thread-safe.
/// </summary>
/// <remarks>
/// The cost of one byte step is bounded at compile time: unions are flattened (starting a value tries at most
/// <see cref="SchemaLimits.MaxUnionAlternatives"/> alternatives, and stops once the sink is full), and nothing
/// recurses past one level (a number or literal that ends hands the byte to its parent, which is a container or the
/// root). <see cref="Work"/> counts steps and alternatives tried, for the per-mask budget.
/// </remarks>
internal sealed class JsonMatcher
{
    /// <summary>How many alternative states are tracked at most.</summary>
    public const int MaxStates = 32;

    /// <summary>
    /// How many frames are interned before the table starts over (memory per sequence stays bounded however long the
    /// document). Forgetting frames is sound: live states keep theirs, and an equal frame created later only makes
    /// equal states compare unequal, which costs a sink slot or a mask-cache miss, never a wrong mask.
    /// </summary>
    public const int MaxFrames = 1 << 16;

    private readonly GrammarNode[] _nodes;
    private readonly int _maxWhitespace;
    private readonly Dictionary<MatchState, Frame> _frames = [];
    private readonly Frame _rootDone;
    private Frame? _lastFrame;

    /// <summary>Creates a matcher over <paramref name="grammar"/>.</summary>
    /// <param name="grammar">The compiled grammar.</param>
    public JsonMatcher(JsonGrammar grammar)
    {
        _nodes = grammar.Nodes;
        _maxWhitespace = JsonGrammar.MaxWhitespaceRun;
        _rootDone = Intern(new MatchState(null, 0, Phases.RootDone, 0, 0, 0));
        Initial = new MatchState(null, 0, Phases.RootStart, 0, 0, 0);
    }

    /// <summary>The state before any byte.</summary>
    public MatchState Initial { get; }

    /// <summary>The number of distinct frames in the table.</summary>
    public int FrameCount => _frames.Count;

    /// <summary>Work done since last reset: one unit per byte step and per union alternative tried.</summary>
    public long Work { get; set; }

    /// <summary>Returns the one frame for <paramref name="state"/>, creating it the first time.</summary>
    /// <param name="state">The state to resume.</param>
    public Frame Intern(in MatchState state)
    {
        // A walk interns the same continuation for many sibling trie nodes in a row.
        if (_lastFrame is not null && _lastFrame.State.Equals(state))
        {
            return _lastFrame;
        }

        if (!_frames.TryGetValue(state, out Frame? frame))
        {
            if (_frames.Count >= MaxFrames)
            {
                _frames.Clear();
                _frames.Add(_rootDone.State, _rootDone);
            }

            frame = new Frame(state);
            _frames.Add(state, frame);
        }

        _lastFrame = frame;
        return frame;
    }

    /// <summary>Whether the bytes so far form a complete document in <paramref name="state"/>.</summary>
    /// <param name="state">A state.</param>
    public bool CanFinish(in MatchState state)
    {
        if (state.Parent is null)
        {
            return state.Phase == Phases.RootDone;
        }

        if (!ReferenceEquals(state.Parent, _rootDone))
        {
            return false;
        }

        GrammarNode node = _nodes[state.Node];
        return node.Kind switch
        {
            NodeKind.Number => NumberDone(state, node),
            NodeKind.Literal => node.Literals!.Terminal(state.A) >= 0,
            _ => false,
        };
    }

    /// <summary>
    /// How many more code points the string of <paramref name="state"/> may take when the state is between characters
    /// of a string (<see cref="int.MaxValue"/> when unbounded), or -1 when it is not.
    /// </summary>
    /// <param name="state">A state.</param>
    public int StringRoom(in MatchState state)
    {
        GrammarNode node = _nodes[state.Node];
        if (node.Kind != NodeKind.String || state.Phase != Phases.StringBody)
        {
            return -1;
        }

        return node.MaxLength == int.MaxValue ? int.MaxValue : node.MaxLength - state.A;
    }

    /// <summary>Adds the states that follow <paramref name="state"/> on byte <paramref name="b"/> to <paramref name="sink"/>.</summary>
    /// <param name="state">The state.</param>
    /// <param name="b">The byte.</param>
    /// <param name="sink">Where the successors go; none when the byte cannot come next.</param>
    public void Step(in MatchState state, byte b, ref StateSink sink)
    {
        Work++;
        GrammarNode node = _nodes[state.Node];
        switch (node.Kind)
        {
            case NodeKind.Root:
                StepRoot(state, node, b, ref sink);
                break;
            case NodeKind.Object:
                StepObject(state, node, b, ref sink);
                break;
            case NodeKind.Array:
                StepArray(state, node, b, ref sink);
                break;
            case NodeKind.String:
                StepString(state, node, b, ref sink);
                break;
            case NodeKind.Number:
                StepNumber(state, node, b, ref sink);
                break;
            case NodeKind.Literal:
                StepLiteral(state, node, b, ref sink);
                break;
            default:
                StartValue(state.Node, state.Parent!, b, ref sink);
                break;
        }
    }

    private static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    private static bool CanAddItem(GrammarNode node, int count)
        => count < node.MaxItems && (count < node.PrefixItems.Length || node.Items >= 0);

    private static bool CanClose(GrammarNode node, int next) => node.FirstRequiredFrom[next] == node.PropertyValues.Length;

    // Whether a declared property whose name ends at or below trie node 'trieNode' may come next: the first one at or
    // after 'next' (a binary search, so an object of thousands of properties costs a step O(log n), not O(n)).
    private static bool HasAllowedBelow(GrammarNode node, int trieNode, int next)
    {
        int[] below = node.KeyPropertiesBelow[trieNode];
        int index = Array.BinarySearch(below, next);
        if (index < 0)
        {
            index = ~index;
        }

        return index < below.Length && below[index] <= node.FirstRequiredFrom[next];
    }

    private static bool CanContinue(GrammarNode node, int next)
        => node.AdditionalValue >= 0 || (node.Keys is not null && HasAllowedBelow(node, 0, next));

    private void Whitespace(in MatchState state, ref StateSink sink)
    {
        if (state.C < _maxWhitespace)
        {
            sink.Add(state with { C = state.C + 1 });
        }
    }

    // A value of node 'index' starts with byte b, to resume 'parent' when it ends. A union's alternatives are
    // flattened (none is a union), so this tries at most MaxUnionAlternatives nodes and recurses no further.
    private void StartValue(int index, Frame parent, byte b, ref StateSink sink)
    {
        GrammarNode node = _nodes[index];
        if (!node.StartBytes[b])
        {
            return;
        }

        if (node.Kind != NodeKind.Union)
        {
            Step(new MatchState(parent, index, 0, 0, 0, 0), b, ref sink);
            return;
        }

        int[] alternatives = node.Alternatives;
        for (int i = 0; i < alternatives.Length && !sink.IsFull; i++)
        {
            Work++;
            int alternative = alternatives[i];
            if (_nodes[alternative].StartBytes[b])
            {
                Step(new MatchState(parent, alternative, 0, 0, 0, 0), b, ref sink);
            }
        }
    }

    private void StepRoot(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        if (state.Phase != Phases.RootStart)
        {
            return;
        }

        if (IsWhitespace(b))
        {
            Whitespace(state, ref sink);
        }
        else
        {
            StartValue(node.Value, _rootDone, b, ref sink);
        }
    }

    private void StepObject(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        switch (state.Phase)
        {
            case Phases.ObjectStart:
                if (b == '{')
                {
                    sink.Add(state with { Phase = Phases.ObjectAfterOpen });
                }

                break;

            case Phases.ObjectAfterOpen:
            case Phases.ObjectAfterComma:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (b == '"')
                {
                    BeginKey(state, node, ref sink);
                }
                else if (b == '}' && state.Phase == Phases.ObjectAfterOpen && CanClose(node, state.A))
                {
                    sink.Add(state.Parent!.State);
                }

                break;

            case Phases.ObjectKeyTrie:
                StepKey(state, node, b, ref sink);
                break;

            case Phases.ObjectAfterKey:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (b == ':')
                {
                    sink.Add(state with { Phase = Phases.ObjectAfterColon, C = 0 });
                }

                break;

            case Phases.ObjectAfterColon:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (_nodes[state.B].StartBytes[b])
                {
                    Frame frame = Intern(state with { Phase = Phases.ObjectAfterValue, B = 0, C = 0 });
                    StartValue(state.B, frame, b, ref sink);
                }

                break;

            case Phases.ObjectAfterValue:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (b == ',' && CanContinue(node, state.A))
                {
                    sink.Add(state with { Phase = Phases.ObjectAfterComma, C = 0 });
                }
                else if (b == '}' && CanClose(node, state.A))
                {
                    sink.Add(state.Parent!.State);
                }

                break;
        }
    }

    // The opening quote of a key: walk the declared names' trie, or (none declared) match an extra key string.
    private void BeginKey(in MatchState state, GrammarNode node, ref StateSink sink)
    {
        if (node.Keys is not null)
        {
            StepKey(state with { Phase = Phases.ObjectKeyTrie, B = 0, C = 0 }, node, (byte)'"', ref sink);
        }
        else if (node.AdditionalValue >= 0)
        {
            Frame frame = Intern(state with { Phase = Phases.ObjectAfterKey, B = node.AdditionalValue, C = 0 });
            sink.Add(new MatchState(frame, node.ExtraKey, Phases.StringBody, 0, 0, 0));
        }
    }

    private void StepKey(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        LiteralTrie keys = node.Keys!;
        int child = keys.Child(state.B, b);
        if (child >= 0)
        {
            int property = keys.Terminal(child);
            if (property >= 0)
            {
                if (node.PropertyEnabled[property] && property >= state.A && property <= node.FirstRequiredFrom[state.A])
                {
                    sink.Add(state with { Phase = Phases.ObjectAfterKey, A = property + 1, B = node.PropertyValues[property], C = 0 });
                }
            }
            else if (HasAllowedBelow(node, child, state.A) || (node.AdditionalValue >= 0 && node.KeyCanDivergeBelow[child]))
            {
                sink.Add(state with { B = child });
            }

            return;
        }

        // The key leaves every declared name: it is an extra key (escape-free, so it cannot spell a declared name).
        int phase = node.KeyStringPhase[state.B];
        if (node.AdditionalValue < 0 || phase is not (Phases.StringBody or Phases.StringContinuation))
        {
            return;
        }

        int count = 0;
        int detail = node.KeyStringDetail[state.B];
        GrammarNode keyNode = _nodes[node.ExtraKey];
        StepResult result = ScalarSteps.String(keyNode, ref phase, ref count, ref detail, b);
        if (result == StepResult.Dead)
        {
            return;
        }

        Frame frame = Intern(state with { Phase = Phases.ObjectAfterKey, B = node.AdditionalValue, C = 0 });
        sink.Add(result == StepResult.Close ? frame.State : new MatchState(frame, node.ExtraKey, phase, count, detail, 0));
    }

    private void StepArray(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        switch (state.Phase)
        {
            case Phases.ArrayStart:
                if (b == '[')
                {
                    sink.Add(state with { Phase = Phases.ArrayAfterOpen });
                }

                break;

            case Phases.ArrayAfterOpen:
            case Phases.ArrayAfterComma:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (b == ']' && state.Phase == Phases.ArrayAfterOpen)
                {
                    if (state.A >= node.MinItems)
                    {
                        sink.Add(state.Parent!.State);
                    }
                }
                else if (CanAddItem(node, state.A))
                {
                    int item = state.A < node.PrefixItems.Length ? node.PrefixItems[state.A] : node.Items;
                    if (!_nodes[item].StartBytes[b])
                    {
                        break;
                    }

                    int next = state.A < node.CountCap ? state.A + 1 : state.A;
                    Frame frame = Intern(state with { Phase = Phases.ArrayAfterValue, A = next, C = 0 });
                    StartValue(item, frame, b, ref sink);
                }

                break;

            case Phases.ArrayAfterValue:
                if (IsWhitespace(b))
                {
                    Whitespace(state, ref sink);
                }
                else if (b == ',' && CanAddItem(node, state.A))
                {
                    sink.Add(state with { Phase = Phases.ArrayAfterComma, C = 0 });
                }
                else if (b == ']' && state.A >= node.MinItems)
                {
                    sink.Add(state.Parent!.State);
                }

                break;
        }
    }

    private static void StepString(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        int phase = state.Phase;
        int count = state.A;
        int detail = state.B;
        switch (ScalarSteps.String(node, ref phase, ref count, ref detail, b))
        {
            case StepResult.Continue:
                sink.Add(new MatchState(state.Parent, state.Node, phase, count, detail, 0));
                break;
            case StepResult.Close:
                sink.Add(state.Parent!.State);
                break;
        }
    }

    // Whether the number so far is complete (and, when bounded, within its bounds).
    private static bool NumberDone(in MatchState state, GrammarNode node)
        => ScalarSteps.NumberComplete(state.Phase) && (!node.Bounded || ScalarSteps.InRange(node, state.A, state.B));

    private void StepNumber(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        if (node.Bounded)
        {
            int phase = state.Phase;
            int magnitude = state.A;
            int negative = state.B;
            if (ScalarSteps.BoundedInteger(node, ref phase, ref magnitude, ref negative, b))
            {
                sink.Add(state with { Phase = phase, A = magnitude, B = negative });
                return;
            }
        }
        else
        {
            int next = ScalarSteps.Number(node.IntegerOnly, state.Phase, b);
            if (next >= 0)
            {
                sink.Add(state with { Phase = next });
                return;
            }
        }

        if (NumberDone(state, node))
        {
            Step(state.Parent!.State, b, ref sink);
        }
    }

    private void StepLiteral(in MatchState state, GrammarNode node, byte b, ref StateSink sink)
    {
        LiteralTrie literals = node.Literals!;
        int child = literals.Child(state.A, b);
        if (child >= 0)
        {
            // A literal that nothing can extend ends at once, so its states merge with the parent's.
            sink.Add(literals.Terminal(child) >= 0 && !literals.HasChildren(child) ? state.Parent!.State : state with { A = child });
        }
        else if (literals.Terminal(state.A) >= 0)
        {
            Step(state.Parent!.State, b, ref sink);
        }
    }
}
