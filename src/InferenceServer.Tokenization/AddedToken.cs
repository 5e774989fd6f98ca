namespace InferenceServer.Tokenization;

/// <summary>One entry of tokenizer.json's <c>added_tokens</c>: a token matched whole in the input before pre-tokenization.</summary>
internal sealed class AddedToken
{
    /// <summary>Creates the token.</summary>
    /// <param name="id">Its id.</param>
    /// <param name="content">Its text.</param>
    /// <param name="special">Whether it is special (skipped by decode when asked).</param>
    /// <param name="singleWord">Whether it only matches when not inside a word.</param>
    /// <param name="leftStrip">Whether whitespace on its left is absorbed into it.</param>
    /// <param name="rightStrip">Whether whitespace on its right is absorbed into it.</param>
    /// <param name="normalized">Whether it is matched in normalized text (true) or in the raw input (false).</param>
    public AddedToken(int id, string content, bool special, bool singleWord, bool leftStrip, bool rightStrip, bool normalized)
    {
        Id = id;
        Content = content;
        Special = special;
        SingleWord = singleWord;
        LeftStrip = leftStrip;
        RightStrip = rightStrip;
        Normalized = normalized;
    }

    /// <summary>The token id.</summary>
    public int Id { get; }

    /// <summary>The token text.</summary>
    public string Content { get; }

    /// <summary>Whether it is special.</summary>
    public bool Special { get; }

    /// <summary>Whether it only matches as a whole word.</summary>
    public bool SingleWord { get; }

    /// <summary>Whether whitespace before it is absorbed.</summary>
    public bool LeftStrip { get; }

    /// <summary>Whether whitespace after it is absorbed.</summary>
    public bool RightStrip { get; }

    /// <summary>Whether it is matched against normalized text.</summary>
    public bool Normalized { get; }
}
