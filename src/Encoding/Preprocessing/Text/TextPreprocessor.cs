namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// The text profiles: validate the string (non-blank, at most MaxTextLength characters), tokenise,
/// emit int64 [1, L] tensors. Tokenizers are loaded once per preprocessor and are thread-safe.
/// </summary>
public sealed class TextPreprocessor : IPreprocessor
{
    private readonly Func<string, IReadOnlyList<ModelTensor>> _tokenize;
    private readonly PreprocessingOptions _options;

    private TextPreprocessor(string profile, Func<string, IReadOnlyList<ModelTensor>> tokenize, PreprocessingOptions options)
    {
        Profile = profile;
        _tokenize = tokenize;
        _options = options;
    }

    public string Profile { get; }

    public Modality Modality => Modality.Text;

    /// <summary><c>imagebind-text</c>: file 0 is CLIP's bpe_simple_vocab_16e6.txt.gz.</summary>
    public static TextPreprocessor ImageBind(IReadOnlyList<string> tokenizerFiles, PreprocessingOptions options)
    {
        var clip = ClipTokenizer.Load(File(tokenizerFiles, 0, "imagebind-text", "bpe_simple_vocab_16e6.txt.gz"));
        return new("imagebind-text", t => [ModelTensor.Int64("input_ids", [1, ClipTokenizer.ContextLength], clip.Tokenize(t))], options);
    }

    /// <summary><c>clap-text</c>: files 0 and 1 are RoBERTa's vocab.json and merges.txt.</summary>
    public static TextPreprocessor Clap(IReadOnlyList<string> tokenizerFiles, PreprocessingOptions options)
    {
        var roberta = RobertaTokenizer.Load(File(tokenizerFiles, 0, "clap-text", "vocab.json"), File(tokenizerFiles, 1, "clap-text", "merges.txt"));
        return new("clap-text", t =>
        {
            var (ids, mask) = roberta.Tokenize(t);
            return
            [
                ModelTensor.Int64("input_ids", [1, RobertaTokenizer.ContextLength], ids),
                ModelTensor.Int64("attention_mask", [1, RobertaTokenizer.ContextLength], mask),
            ];
        }, options);
    }

    /// <summary><c>internvl-text</c>: file 0 is the LLaMA SentencePiece tokenizer.model.</summary>
    public static TextPreprocessor InternVL(IReadOnlyList<string> tokenizerFiles, PreprocessingOptions options)
    {
        var sp = InternVLTokenizer.Load(File(tokenizerFiles, 0, "internvl-text", "tokenizer.model"));
        return new("internvl-text", t => [ModelTensor.Int64("input_ids", [1, InternVLTokenizer.ContextLength], sp.Tokenize(t))], options);
    }

    public PreprocessedItem Process(MediaInput input)
    {
        if (input.Modality != Modality.Text)
            throw new ArgumentException($"{Profile} preprocesses text, not {input.Modality.ToName()}", nameof(input));
        return new PreprocessedItem(Preprocess(input.Text ?? ""));
    }

    /// <summary>Pure string → tensors (what the benchmark times).</summary>
    public IReadOnlyList<ModelTensor> Preprocess(string text)
    {
        Validate(text, _options.MaxTextLength);
        return _tokenize(text);
    }

    /// <summary>Throws EmptyText for blank input and TooLarge above the configured length.</summary>
    public static void Validate(string text, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new MediaException(MediaErrorKind.EmptyText, "text is empty or only whitespace");
        if (text.Length > maxLength)
            throw new MediaException(MediaErrorKind.TooLarge, $"text has {text.Length} characters, above the limit of {maxLength}");
    }

    private static string File(IReadOnlyList<string> files, int index, string profile, string what)
    {
        if (files.Count <= index)
            throw new ArgumentException($"profile '{profile}' needs tokenizer file {index} ({what}); the manifest lists {files.Count}");
        var path = files[index];
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"profile '{profile}': tokenizer file {index} ({what}) not found at '{path}'", path);
        return path;
    }
}
