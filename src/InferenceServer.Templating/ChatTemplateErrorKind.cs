// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating;

/// <summary>Why a chat template could not be parsed or rendered.</summary>
public enum ChatTemplateErrorKind
{
    /// <summary>The template source is not valid Jinja (or uses a construct this engine refuses); the message names the line.</summary>
    Syntax,

    /// <summary>The template called <c>raise_exception(message)</c>, usually because the conversation breaks its rules
    /// (for example a system message where the model has no system role). The message is the template's.</summary>
    RaisedByTemplate,

    /// <summary>An operation failed while rendering: a type error such as adding a string to a mapping, an undefined
    /// value used where Jinja2 raises, a call of something that is not callable. The message names the line.</summary>
    Runtime,

    /// <summary>The template ran past a guard: too many loop iterations, too much output, or calls nested too deep.</summary>
    LimitExceeded,

    /// <summary>The <c>tokenizer_config.json</c> (or its <c>chat_template</c> entry) is malformed.</summary>
    Configuration,
}
