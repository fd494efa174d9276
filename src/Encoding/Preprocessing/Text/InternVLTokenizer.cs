using Microsoft.ML.Tokenizers;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// InternVL-C's text side: HF LlamaTokenizer(use_fast=False, add_eos_token=True) with
/// pad_token_id 0, called on <c>'summarize:' + text</c> with max_length 80, truncation and
/// padding='max_length' (right). The SentencePiece model itself runs in Microsoft.ML.Tokenizers.
/// </summary>
public sealed class InternVLTokenizer
{
    public const int ContextLength = 80;
    public const string Prefix = "summarize:";

    private static readonly string[] Specials = ["<s>", "</s>", "<unk>"];

    private readonly SentencePieceTokenizer _sp;

    private InternVLTokenizer(SentencePieceTokenizer sp) => _sp = sp;

    public static InternVLTokenizer Load(string modelPath)
    {
        using var stream = File.OpenRead(modelPath);
        return new InternVLTokenizer(LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false));
    }

    public int Bos => _sp.BeginningOfSentenceId;

    public int Eos => _sp.EndOfSentenceId;

    /// <summary>
    /// BOS + pieces of 'summarize:'+text (first 78) + EOS, zero-padded to 80. As in HF's slow
    /// tokenizer, a literal &lt;s&gt;, &lt;/s&gt; or &lt;unk&gt; in the text is that token, and the text
    /// between literals is encoded piece by piece (each piece with SentencePiece's leading space).
    /// </summary>
    public long[] Tokenize(string text)
    {
        var ids = new List<int>();
        foreach (var (piece, special) in SpecialTokenSplit.Split(Prefix + text, Specials))
        {
            if (special) ids.Add(piece == "<s>" ? Bos : piece == "</s>" ? Eos : _sp.UnknownId);
            else ids.AddRange(_sp.EncodeToIds(piece, addBeginningOfSentence: false, addEndOfSentence: false));
        }
        var n = Math.Min(ids.Count, ContextLength - 2);
        var result = new long[ContextLength];
        result[0] = Bos;
        for (var i = 0; i < n; i++)
            result[i + 1] = ids[i];
        result[n + 1] = Eos;
        return result;
    }
}
