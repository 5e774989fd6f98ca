// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Splits template source into tokens the way Jinja2's lexer does with the environment transformers uses:
/// newlines normalized to <c>\n</c>, one trailing newline dropped (<c>keep_trailing_newline=False</c>),
/// <c>trim_blocks</c> and <c>lstrip_blocks</c> on, <c>-</c>/<c>+</c> whitespace control on tags, and block/variable
/// ends recognized only where brackets are balanced. Whitespace control is applied here, to the data tokens.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] TwoCharOperators = ["//", "**", "==", "!=", ">=", "<="];
    private const string OneCharOperators = "+-/*%~[](){}><=.:|,;";

    private readonly string _source;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;

    private Lexer(string source)
    {
        _source = Normalize(source);
    }

    /// <summary>Tokenizes <paramref name="source"/>; the last token is <see cref="TokenKind.End"/>.</summary>
    /// <exception cref="ChatTemplateException">On an unterminated tag, comment or string, or a stray character.</exception>
    public static List<Token> Tokenize(string source)
    {
        var lexer = new Lexer(source);
        try
        {
            lexer.Run();
        }
        catch (ChatTemplateException ex) when (ex.Kind == ChatTemplateErrorKind.Syntax)
        {
            lexer._tokens.Add(new Token(TokenKind.Error, ex.Detail, null, ex.Line ?? lexer._line));
        }

        return lexer._tokens;
    }

    private static string Normalize(string source)
    {
        string text = source.Contains('\r', StringComparison.Ordinal) ? source.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n') : source;
        return text.EndsWith('\n') ? text[..^1] : text;
    }

    private void Run()
    {
        string s = _source;
        while (_pos < s.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0)
            {
                Emit(TokenKind.Data, s[_pos..]);
                break;
            }

            char kind = s[tag + 1];
            int p = tag + 2;
            char sign = p < s.Length && (s[p] == '-' || s[p] == '+') ? s[p] : '\0';
            int rawBodyStart = 0;
            bool isRaw = kind == '%' && IsRawBegin(p + (sign == '\0' ? 0 : 1), out rawBodyStart);
            string text = ControlWhitespace(s[_pos..tag], sign, lstrip: kind != '{', lineStarting: _pos == 0 || s[_pos - 1] == '\n');
            int textLine = _line;
            _line += CountNewlines(_pos, tag);
            if (text.Length > 0)
            {
                _tokens.Add(new Token(TokenKind.Data, text, null, textLine));
            }

            if (sign != '\0')
            {
                p++;
            }

            if (kind == '#')
            {
                LexComment(p);
            }
            else if (isRaw)
            {
                LexRaw(rawBodyStart);
            }
            else
            {
                _tokens.Add(new Token(kind == '{' ? TokenKind.VariableBegin : TokenKind.BlockBegin, kind == '{' ? "{{" : "{%", null, _line));
                _pos = p;
                LexTag(block: kind == '%');
            }
        }

        _tokens.Add(new Token(TokenKind.End, string.Empty, null, _line));
    }

    private int FindTagStart(int from)
    {
        string s = _source;
        int i = from;
        while (true)
        {
            i = s.IndexOf('{', i);
            if (i < 0 || i + 1 >= s.Length)
            {
                return -1;
            }

            char next = s[i + 1];
            if (next == '{' || next == '%' || next == '#')
            {
                return i;
            }

            i++;
        }
    }

    /// <summary>Applies <c>{%-</c> (strip all trailing whitespace) or <c>lstrip_blocks</c> to the text before a tag.</summary>
    private static string ControlWhitespace(string text, char sign, bool lstrip, bool lineStarting)
    {
        if (sign == '-')
        {
            return PyString.RStrip(text);
        }

        if (sign == '+' || !lstrip)
        {
            return text;
        }

        int lineStart = text.LastIndexOf('\n') + 1;
        if ((lineStart > 0 || lineStarting) && lineStart < text.Length)
        {
            for (int i = lineStart; i < text.Length; i++)
            {
                if (!PyString.IsWhiteSpace(text[i]))
                {
                    return text;
                }
            }

            return text[..lineStart];
        }

        return text;
    }

    private bool IsRawBegin(int p, out int bodyStart)
    {
        bodyStart = 0;
        string s = _source;
        p = SkipWhiteSpace(p);
        if (string.CompareOrdinal(s, p, "raw", 0, 3) != 0)
        {
            return false;
        }

        p = SkipWhiteSpace(p + 3);
        if (string.CompareOrdinal(s, p, "-%}", 0, 3) == 0)
        {
            bodyStart = SkipWhiteSpace(p + 3);
            return true;
        }

        if (string.CompareOrdinal(s, p, "%}", 0, 2) == 0)
        {
            bodyStart = p + 2;
            return true;
        }

        return false;
    }

    private void LexRaw(int bodyStart)
    {
        string s = _source;
        int search = bodyStart;
        while (true)
        {
            int tag = s.IndexOf("{%", search, StringComparison.Ordinal);
            if (tag < 0)
            {
                throw ChatTemplateException.Syntax("missing end of raw directive", _line);
            }

            int p = tag + 2;
            char sign = p < s.Length && (s[p] == '-' || s[p] == '+') ? s[p] : '\0';
            int q = SkipWhiteSpace(sign == '\0' ? p : p + 1);
            if (string.CompareOrdinal(s, q, "endraw", 0, 6) == 0)
            {
                int r = SkipWhiteSpace(q + 6);
                int end;
                if (string.CompareOrdinal(s, r, "-%}", 0, 3) == 0)
                {
                    end = SkipWhiteSpace(r + 3);
                }
                else if (string.CompareOrdinal(s, r, "+%}", 0, 3) == 0)
                {
                    end = r + 3;
                }
                else if (string.CompareOrdinal(s, r, "%}", 0, 2) == 0)
                {
                    end = r + 2 < s.Length && s[r + 2] == '\n' ? r + 3 : r + 2;
                }
                else
                {
                    search = tag + 2;
                    continue;
                }

                string body = ControlWhitespace(s[bodyStart..tag], sign, lstrip: true, lineStarting: bodyStart == 0 || s[bodyStart - 1] == '\n');
                if (body.Length > 0)
                {
                    _tokens.Add(new Token(TokenKind.Data, body, null, _line));
                }

                _line += CountNewlines(_pos, end);
                _pos = end;
                return;
            }

            search = tag + 2;
        }
    }

    private void LexComment(int p)
    {
        string s = _source;
        if (p >= s.Length)
        {
            // Jinja2's tokenizer stops as soon as the input is exhausted, so a "{#" that ends the template is dropped.
            _pos = p;
            return;
        }

        int close = s.IndexOf("#}", p, StringComparison.Ordinal);
        if (close < 0)
        {
            throw ChatTemplateException.Syntax("missing end of comment tag", _line);
        }

        char sign = close > p && (s[close - 1] == '-' || s[close - 1] == '+') ? s[close - 1] : '\0';
        int end = close + 2;
        if (sign == '-')
        {
            end = SkipWhiteSpace(end);
        }
        else if (sign == '\0' && end < s.Length && s[end] == '\n')
        {
            end++;
        }

        _line += CountNewlines(p, end);
        _pos = end;
    }

    private void LexTag(bool block)
    {
        string s = _source;
        var balance = new Stack<char>();
        int startLine = _line;
        while (true)
        {
            int ws = _pos;
            _pos = SkipWhiteSpace(_pos);
            _line += CountNewlines(ws, _pos);
            if (_pos >= s.Length)
            {
                throw ChatTemplateException.Syntax(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'", startLine);
            }

            if (balance.Count == 0 && TryLexTagEnd(block))
            {
                return;
            }

            char c = s[_pos];
            if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c == '_' || char.IsLetter(c))
            {
                int start = _pos;
                while (_pos < s.Length && (s[_pos] == '_' || char.IsLetterOrDigit(s[_pos])))
                {
                    _pos++;
                }

                Emit(TokenKind.Name, s[start.._pos]);
            }
            else if (c == '\'' || c == '"')
            {
                LexString(c);
            }
            else
            {
                LexOperator(balance);
            }
        }
    }

    private bool TryLexTagEnd(bool block)
    {
        string s = _source;
        string close = block ? "%}" : "}}";
        if (string.CompareOrdinal(s, _pos, close, 0, 2) == 0)
        {
            Emit(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, close);
            _pos += 2;
            if (block && _pos < s.Length && s[_pos] == '\n')
            {
                _pos++;
                _line++;
            }

            return true;
        }

        char sign = s[_pos];
        if ((sign == '-' || (block && sign == '+')) && string.CompareOrdinal(s, _pos + 1, close, 0, 2) == 0)
        {
            Emit(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, close);
            _pos += 3;
            if (sign == '-')
            {
                int ws = _pos;
                _pos = SkipWhiteSpace(_pos);
                _line += CountNewlines(ws, _pos);
            }

            return true;
        }

        return false;
    }

    private void LexNumber()
    {
        string s = _source;
        int start = _pos;
        ScanDigits();
        bool isFloat = false;
        bool afterDot = start > 0 && s[start - 1] == '.';
        if (!afterDot && _pos + 1 < s.Length && s[_pos] == '.' && char.IsAsciiDigit(s[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            ScanDigits();
        }

        if (!afterDot && _pos < s.Length && (s[_pos] == 'e' || s[_pos] == 'E'))
        {
            int e = _pos + 1;
            if (e < s.Length && (s[e] == '+' || s[e] == '-'))
            {
                e++;
            }

            if (e < s.Length && char.IsAsciiDigit(s[e]))
            {
                isFloat = true;
                _pos = e;
                ScanDigits();
            }
        }

        string text = s[start.._pos].Replace("_", string.Empty, StringComparison.Ordinal);
        if (isFloat)
        {
            _tokens.Add(new Token(TokenKind.Float, text, double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture), _line));
        }
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
        {
            _tokens.Add(new Token(TokenKind.Integer, text, value, _line));
        }
        else
        {
            throw ChatTemplateException.Syntax($"integer literal {text} is too large", _line);
        }
    }

    private void ScanDigits()
    {
        string s = _source;
        while (_pos < s.Length && (char.IsAsciiDigit(s[_pos]) || (s[_pos] == '_' && _pos + 1 < s.Length && char.IsAsciiDigit(s[_pos + 1]))))
        {
            _pos++;
        }
    }

    private void LexString(char quote)
    {
        string s = _source;
        int line = _line;
        var sb = new StringBuilder();
        int p = _pos + 1;
        while (true)
        {
            if (p >= s.Length)
            {
                throw ChatTemplateException.Syntax("unterminated string literal", line);
            }

            char c = s[p];
            if (c == quote)
            {
                p++;
                break;
            }

            if (c == '\n')
            {
                _line++;
            }

            if (c != '\\')
            {
                sb.Append(c);
                p++;
                continue;
            }

            if (p + 1 >= s.Length)
            {
                throw ChatTemplateException.Syntax("unterminated string literal", line);
            }

            p = DecodeEscape(s, p + 1, sb, line);
        }

        _tokens.Add(new Token(TokenKind.String, sb.ToString(), null, line));
        _pos = p;
    }

    /// <summary>Decodes the Python escape whose letter is at <paramref name="p"/>; returns the index after it.</summary>
    private int DecodeEscape(string s, int p, StringBuilder sb, int line)
    {
        char e = s[p];
        switch (e)
        {
            case '\n':
                _line++;
                return p + 1;
            case '\\':
            case '\'':
            case '"':
                sb.Append(e);
                return p + 1;
            case 'a':
                sb.Append('\a');
                return p + 1;
            case 'b':
                sb.Append('\b');
                return p + 1;
            case 'f':
                sb.Append('\f');
                return p + 1;
            case 'n':
                sb.Append('\n');
                return p + 1;
            case 'r':
                sb.Append('\r');
                return p + 1;
            case 't':
                sb.Append('\t');
                return p + 1;
            case 'v':
                sb.Append('\v');
                return p + 1;
            case 'x':
                return AppendHex(s, p + 1, 2, sb, line);
            case 'u':
                return AppendHex(s, p + 1, 4, sb, line);
            case 'U':
                return AppendHex(s, p + 1, 8, sb, line);
            case 'N':
                throw ChatTemplateException.Syntax("\\N{...} escapes in string literals are not supported", line);
            default:
                if (e >= '0' && e <= '7')
                {
                    int value = 0;
                    int q = p;
                    while (q < s.Length && q < p + 3 && s[q] >= '0' && s[q] <= '7')
                    {
                        value = (value * 8) + (s[q] - '0');
                        q++;
                    }

                    sb.Append((char)value);
                    return q;
                }

                sb.Append('\\').Append(e);
                return p + 1;
        }
    }

    private static int AppendHex(string s, int p, int digits, StringBuilder sb, int line)
    {
        if (p + digits > s.Length || !int.TryParse(s.AsSpan(p, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value) || value > 0x10FFFF)
        {
            throw ChatTemplateException.Syntax($"truncated \\{(digits == 2 ? 'x' : digits == 4 ? 'u' : 'U')} escape in a string literal", line);
        }

        sb.Append(char.ConvertFromUtf32(value));
        return p + digits;
    }

    private void LexOperator(Stack<char> balance)
    {
        string s = _source;
        foreach (string op in TwoCharOperators)
        {
            if (string.CompareOrdinal(s, _pos, op, 0, 2) == 0)
            {
                Emit(TokenKind.Operator, op);
                _pos += 2;
                return;
            }
        }

        char c = s[_pos];
        if (!OneCharOperators.Contains(c, StringComparison.Ordinal))
        {
            throw ChatTemplateException.Syntax($"unexpected char '{c}'", _line);
        }

        switch (c)
        {
            case '(':
                balance.Push(')');
                break;
            case '[':
                balance.Push(']');
                break;
            case '{':
                balance.Push('}');
                break;
            case ')':
            case ']':
            case '}':
                if (balance.Count == 0)
                {
                    throw ChatTemplateException.Syntax($"unexpected '{c}'", _line);
                }

                char expected = balance.Pop();
                if (expected != c)
                {
                    throw ChatTemplateException.Syntax($"unexpected '{c}', expected '{expected}'", _line);
                }

                break;
        }

        Emit(TokenKind.Operator, c.ToString());
        _pos++;
    }

    private void Emit(TokenKind kind, string value) => _tokens.Add(new Token(kind, value, null, _line));

    private int SkipWhiteSpace(int p)
    {
        string s = _source;
        while (p < s.Length && PyString.IsWhiteSpace(s[p]))
        {
            p++;
        }

        return p;
    }

    private int CountNewlines(int from, int to)
    {
        int n = 0;
        for (int i = from; i < to && i < _source.Length; i++)
        {
            if (_source[i] == '\n')
            {
                n++;
            }
        }

        return n;
    }
}
