#!/usr/bin/env python3
"""Writes tests/fixtures/upstream/hf-text.json: CLAP's RoBERTa and InternVL-C's LLaMA ids from HF transformers' own code.

The oracle for the C# `clap-text` and `internvl-text` profiles, independent of preprocess_image_text.py (whose
RobertaTokenizer and InternVLTokenizer are twins written from the same reading as the C#). FreeBind pins
transformers 4.30.2; transformers cannot be installed here (no PyPI, and it needs `tokenizers`), and its repository
is too large to fetch. So these upstream files, each as the code search's read_file served it (that store keeps
file versions, not release trees: every file comes at its own commit), are written verbatim under a folder OUTSIDE
this repository and given with --transformers (never committed; their SHA-256 is checked before anything runs):

  src/transformers/tokenization_utils.py               03fed90 (Trie, PreTrainedTokenizer.tokenize/_add_tokens/_encode_plus)
  src/transformers/models/roberta/tokenization_roberta.py  557b1a6 (GPT-2 pattern, byte-level BPE, <s> X </s>, <mask> lstrip)
  src/transformers/models/llama/tokenization_llama.py      601c83a (SentencePiece; run with legacy=True)

What makes them run as 4.30.2 did, and what is not upstream:
  * tokenization_utils.py 03fed90 predates 4.31's `split_special_tokens` and 4.34's rewrite of added tokens
    (`_added_tokens_decoder`, AddedToken.special): its `tokenize` is the Trie split with the AddedToken lstrip/rstrip
    handling that 4.30.2 has. Its `_decode` is older than 4.30.2 (decoding is not used here).
  * tokenization_roberta.py 557b1a6 is the pre-4.34 form 4.30.2 has (special tokens wrapped in AddedToken before
    `super().__init__`, `<mask>` with lstrip=True; bpe, _tokenize and the pattern are unchanged since 4.x).
  * tokenization_llama.py 601c83a is newer than 4.30.2: 4.31 added `legacy` (#24565), later versions `add_prefix_space`
    and `get_spm_processor`. With legacy=True its `tokenize` is the base class's, `_tokenize` is
    `sp_model.encode(text, out_type=str)` and the model is loaded with `Load(vocab_file)`: 4.30.2's code paths.
    `add_prefix_space` is read only when legacy is False.
  * tokenization_utils_base.py is NOT upstream's (4.30.2's is ~180 kB; no version of it that fits these files could
    be had whole): a stand-in below implements, from 4.30.2's documented behaviour, SpecialTokensMixin (special tokens
    as AddedToken or str, `all_special_tokens_extended` in SPECIAL_TOKENS_ATTRIBUTES order, `*_token_id` through
    `convert_tokens_to_ids`), `sanitize_special_tokens` (what `from_pretrained` calls last: every special token
    becomes a no-split token), and `__call__` → `_encode_plus` (upstream's) → `prepare_for_model`: truncation
    'longest_first' of a single sequence from the right to max_length − num_special_tokens_to_add(), then
    `build_inputs_with_special_tokens` (upstream's), then right padding with `pad_token_id` and attention_mask 1/0.
    So truncation and padding are held by the stand-in, splitting, special tokens and BPE/SentencePiece by upstream.
  * utils (PaddingStrategy, TensorType, add_end_docstrings, logging) and convert_slow_tokenizer (import_protobuf,
    used only when legacy is False) are small stand-ins too.

Construction follows the callers FreeBind ran:
  * CLAP (laion_clap 740d350 hook.py): RobertaTokenizer.from_pretrained('roberta-base'), then
    tokenize(text, padding="max_length", truncation=True, max_length=77). roberta-base has no tokenizer_config.json,
    so the tokenizer gets the class defaults (model_max_length 512).
  * InternVL-C: FreeBind's AutoTokenizer.from_pretrained(VLC_PATH, use_fast=False, add_eos_token=True), called on
    'summarize:' + text with max_length=80, truncation=True, padding='max_length'. The pad token is InternVL's own
    choice (its InternVLTokenizer sets `pad_token = ' '`, which is not a piece, so pad_token_id is unk's, 0).
    InternVL-14B-224px's tokenizer_config.json is not available here: the special tokens are LlamaTokenizer's
    defaults (<s>, </s>, <unk>). If that repository's special_tokens_map names an extra token (InternVL's
    chinese_alpaca_lora_7b names "[PAD]"), 4.30.2 would also split that literal out of user text.
Both run on the generated tokenizers of make_tokenizers.py (their SHA-256 is in the fixture).

Usage (Debian's python with python3-regex, python3-sentencepiece):
  /usr/bin/python3 tools/reference/make_tokenizers.py --out "$FREEBIND_TESTDATA"
  /usr/bin/python3 tools/reference/upstream_hf.py --transformers /work/scratch/hf/src/transformers \
      --tokenizers "$FREEBIND_TESTDATA/tokenizers" --out tests/fixtures/upstream/hf-text.json
"""

import argparse
import copy
import os
import sys
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fixture_json  # noqa: E402
import preprocess_image_text  # noqa: E402  (the corpus the twins are held to)
from hf_stand_ins import ExplicitEnum, TensorType, check_upstream_files, logger_factory, module, sha256  # noqa: E402

# path under --transformers → (commit the code search served it at, SHA-256 of the file written from it)
UPSTREAM_FILES = {
    "tokenization_utils.py": ("03fed90423ea807eff69fefad2452f0cd73b69a6",
                              "bcc71d60731ed450ccd45ec335280adec794c69e33f55b2117d99046696eeccd"),
    "models/roberta/tokenization_roberta.py": ("557b1a6df15c30a5e2fa5ddd57deb23cba37801b",
                                               "fffdf58dea22fb64a4144770f6d066e86b49e1b5ec327a0c1bd3c29997be2408"),
    "models/llama/tokenization_llama.py": ("601c83aec1708472de7c9d16f15f9b4aa8d12005",
                                           "61113df9b4d86bcd8ad9d1f2e493877e5478bd07fcd83f35522317d974382216"),
}

# Strings that probe what the corpus of preprocess_image_text.py does not: special-token literals with and without
# whitespace around them (HF splits them out; RoBERTa's <mask> eats the space before it), spaces around words, and
# texts long enough to be truncated at 77 (RoBERTa) and 80 (InternVL) with multi-byte characters at the cut.
PROBES = [
    "a <mask> b", "a<mask>b", "a  <mask>  b", "<mask>", " <mask>", "<mask> ", "x\t<mask>\ny",
    "hello <s> world", "hello<s>world", "hello </s> world", "x </s>", "<pad> pad", "<unk>", "x <unk> y",
    "  <s>  spaced  ", "<s><s>", "<s>x</s>", "[PAD] x", "<s", "s>", "</s", "<mask", "mask>", "<MASK>",
    "summarize: twice", "a ", " a", "  two leading", "trailing two  ", "a  b", "a   b   c", "x \n y", "\n\nnewlines first",
    "tab\tseparated\tvalues", "\u00a0nbsp lead", "ideographic\u3000space",
    "word " * 120, "ab " * 200, "é" * 200, "😀" * 100, "日本語のテキスト" * 30, " ".join(str(i) for i in range(200)),
    "x" * 1000, "it's a dog's life, isn't it? they're here, we've won, I'm done, you'll see, he'd go",
    "IT'S LOUD", "don\u2019t curly", "''s ''t", "'s", "a's", "1,000,000.50 $",
    # A contraction glued to the letters after it ('tis → 'ti + s, not ' + tis) changes the BPE of what follows.
    "'tis the season", "'twas the night", "'really 'very 'mother 'dance 'dog", "'llama", "'sup 'rest 'main",
    "y'all'd've", "o'clock rock'n'roll",
]


# ----------------------------------------------------------------------------------------------------------------
# stand-ins (ours, not upstream's; those both generators use are in hf_stand_ins.py)


class PaddingStrategy(ExplicitEnum):
    LONGEST = "longest"
    MAX_LENGTH = "max_length"
    DO_NOT_PAD = "do_not_pad"


class TruncationStrategy(ExplicitEnum):
    ONLY_FIRST = "only_first"
    ONLY_SECOND = "only_second"
    LONGEST_FIRST = "longest_first"
    DO_NOT_TRUNCATE = "do_not_truncate"


# The legacy notice is expected here: legacy=True is passed on purpose.
_get_logger = logger_factory(lambda message: None)


def _add_end_docstrings(*docstr):
    def decorate(fn):
        fn.__doc__ = (fn.__doc__ or "") + "".join(docstr)
        return fn
    return decorate


class AddedToken:
    """4.30.2's AddedToken (a frozen dataclass of content, single_word, lstrip, rstrip, normalized); also takes the
    `special` that newer model files pass, which the 4.30.2 code paths do not read."""

    def __init__(self, content, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False):
        self.content, self.single_word, self.lstrip, self.rstrip, self.normalized = content, single_word, lstrip, rstrip, normalized

    def _key(self):
        return (self.content, self.single_word, self.lstrip, self.rstrip, self.normalized)

    def __eq__(self, other):
        return isinstance(other, AddedToken) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        return self.content


class BatchEncoding(dict):
    def __init__(self, data=None, tensor_type=None, prepend_batch_axis=False, **_):
        super().__init__(data or {})


class PreTrainedTokenizerBase:
    """The parts of 4.30.2's SpecialTokensMixin and PreTrainedTokenizerBase that __call__ on one text uses."""

    SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                                 "mask_token", "additional_special_tokens"]
    padding_side = "right"
    truncation_side = "right"
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(self, **kwargs):
        self.init_inputs = ()
        self.init_kwargs = copy.deepcopy(kwargs)
        max_length = kwargs.pop("model_max_length", None)
        self.model_max_length = max_length if max_length is not None else int(1e30)
        self.clean_up_tokenization_spaces = kwargs.pop("clean_up_tokenization_spaces", True)
        self.verbose = kwargs.pop("verbose", True)
        for attr in self.SPECIAL_TOKENS_ATTRIBUTES:
            setattr(self, "_" + attr, [] if attr == "additional_special_tokens" else None)
        for key, value in kwargs.items():
            if value is not None and key in self.SPECIAL_TOKENS_ATTRIBUTES and key != "additional_special_tokens":
                assert isinstance(value, (str, AddedToken)), (key, value)
                setattr(self, "_" + key, value)

    def __getattr__(self, name):
        # bos_token … mask_token as str, *_token_id through convert_tokens_to_ids, as SpecialTokensMixin's properties.
        if name.endswith("_token_id") and name[:-3] in self.SPECIAL_TOKENS_ATTRIBUTES:
            token = self.__dict__.get("_" + name[:-3])
            return None if token is None else self.convert_tokens_to_ids(str(token))
        if name in self.SPECIAL_TOKENS_ATTRIBUTES:
            token = self.__dict__.get("_" + name)
            return None if token is None else str(token)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name in self.SPECIAL_TOKENS_ATTRIBUTES:
            name = "_" + name  # the setter stores the value as given (no no-split token is added)
        object.__setattr__(self, name, value)

    @property
    def all_special_tokens_extended(self):
        tokens = []
        for attr in self.SPECIAL_TOKENS_ATTRIBUTES:
            value = self.__dict__.get("_" + attr)
            if value:
                tokens += list(value) if isinstance(value, (list, tuple)) else [value]
        return list(OrderedDict.fromkeys(tokens))

    @property
    def all_special_tokens(self):
        return [str(t) for t in self.all_special_tokens_extended]

    def sanitize_special_tokens(self):
        return self.add_tokens(self.all_special_tokens_extended, special_tokens=True)

    def add_tokens(self, new_tokens, special_tokens=False):
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        return self._add_tokens(new_tokens, special_tokens=special_tokens)

    def __call__(self, text, add_special_tokens=True, padding=False, truncation=None, max_length=None):
        assert isinstance(text, str)
        padding_strategy = PaddingStrategy(padding) if isinstance(padding, str) else (
            PaddingStrategy.LONGEST if padding is True else PaddingStrategy.DO_NOT_PAD)
        truncation_strategy = TruncationStrategy.LONGEST_FIRST if truncation is True else (
            TruncationStrategy(truncation) if isinstance(truncation, str) else TruncationStrategy.DO_NOT_TRUNCATE)
        if padding_strategy != PaddingStrategy.DO_NOT_PAD and (self.pad_token is None or self.pad_token_id < 0):
            raise ValueError("Asking to pad but the tokenizer does not have a padding token.")
        return self._encode_plus(text, add_special_tokens=add_special_tokens, padding_strategy=padding_strategy,
                                 truncation_strategy=truncation_strategy, max_length=max_length)

    def prepare_for_model(self, ids, pair_ids=None, add_special_tokens=True, padding="do_not_pad",
                          truncation="do_not_truncate", max_length=None, return_attention_mask=None, **_):
        assert pair_ids is None
        total = len(ids) + (self.num_special_tokens_to_add(pair=False) if add_special_tokens else 0)
        if truncation != TruncationStrategy.DO_NOT_TRUNCATE.value and max_length and total > max_length:
            remove = total - max_length
            assert self.truncation_side == "right" and truncation in ("longest_first", "only_first")
            ids = ids[:-remove]
        sequence = self.build_inputs_with_special_tokens(ids) if add_special_tokens else ids
        encoded = {"input_ids": sequence}
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if return_attention_mask:
            encoded["attention_mask"] = [1] * len(sequence)
        if padding == PaddingStrategy.MAX_LENGTH.value and len(sequence) < max_length:
            assert self.padding_side == "right"
            difference = max_length - len(sequence)
            if return_attention_mask:
                encoded["attention_mask"] = encoded["attention_mask"] + [0] * difference
            encoded["input_ids"] = sequence + [self.pad_token_id] * difference
        return BatchEncoding(encoded)


def install_stand_ins(transformers_dir):
    package = module("transformers", __version__="4.30.2 (stand-in package: see upstream_hf.py)")
    package.__path__ = [transformers_dir]
    logging_module = module("transformers.utils.logging", get_logger=_get_logger)
    module("transformers.utils", PaddingStrategy=PaddingStrategy, TensorType=TensorType, ExplicitEnum=ExplicitEnum,
            add_end_docstrings=_add_end_docstrings, logging=logging_module).__path__ = []

    def import_protobuf(error_message=""):
        raise ImportError("protobuf is only needed with legacy=False, which this script does not use")

    module("transformers.convert_slow_tokenizer", import_protobuf=import_protobuf)
    module("transformers.tokenization_utils_base", AddedToken=AddedToken, BatchEncoding=BatchEncoding,
            PreTrainedTokenizerBase=PreTrainedTokenizerBase, TruncationStrategy=TruncationStrategy,
            ENCODE_KWARGS_DOCSTRING="", ENCODE_PLUS_ADDITIONAL_KWARGS_DOCSTRING="", INIT_TOKENIZER_DOCSTRING="",
            TextInput=str, TextInputPair=tuple, PreTokenizedInput=list, PreTokenizedInputPair=tuple,
            EncodedInput=list, EncodedInputPair=tuple)


def load_upstream(transformers_dir):
    check_upstream_files(transformers_dir, UPSTREAM_FILES)
    install_stand_ins(transformers_dir)
    from transformers.models.llama.tokenization_llama import LlamaTokenizer
    from transformers.models.roberta.tokenization_roberta import RobertaTokenizer
    return RobertaTokenizer, LlamaTokenizer


# ----------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transformers", required=True, help="folder holding the upstream files listed in the docstring (src/transformers)")
    ap.add_argument("--tokenizers", required=True, help="make_tokenizers.py's tokenizers/ folder (roberta/, internvl/)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    RobertaTokenizer, LlamaTokenizer = load_upstream(os.path.abspath(args.transformers))

    files = {
        "roberta/vocab.json": os.path.join(args.tokenizers, "roberta", "vocab.json"),
        "roberta/merges.txt": os.path.join(args.tokenizers, "roberta", "merges.txt"),
        "internvl/tokenizer.model": os.path.join(args.tokenizers, "internvl", "tokenizer.model"),
    }
    # laion_clap: RobertaTokenizer.from_pretrained('roberta-base') = the class with its defaults, then
    # sanitize_special_tokens() (the last step of from_pretrained).
    roberta = RobertaTokenizer(files["roberta/vocab.json"], files["roberta/merges.txt"], model_max_length=512)
    roberta.sanitize_special_tokens()
    # FreeBind: AutoTokenizer.from_pretrained(VLC_PATH, use_fast=False, add_eos_token=True); legacy=True is 4.30.2's
    # behaviour (the flag did not exist yet); InternVL's own tokenizer wrapper sets pad_token = ' '.
    llama = LlamaTokenizer(files["internvl/tokenizer.model"], add_eos_token=True, legacy=True)
    llama.sanitize_special_tokens()
    llama.pad_token = " "
    assert llama.pad_token_id == 0 and llama.bos_token_id == 1 and llama.eos_token_id == 2

    def splits_special(tokenizer, text):
        return any(piece in tokenizer.unique_no_split_tokens for piece in tokenizer.tokens_trie.split(text))

    texts = list(OrderedDict.fromkeys(preprocess_image_text.corpus() + PROBES))
    cases = []
    for text in texts:
        r = roberta(text, padding="max_length", truncation=True, max_length=77)
        i = llama("summarize:" + text, max_length=80, truncation=True, padding="max_length")
        assert len(r["input_ids"]) == 77 and len(r["attention_mask"]) == 77 and len(i["input_ids"]) == 80, text
        cases.append({
            "text": text,
            "roberta_ids": r["input_ids"],
            "roberta_mask": r["attention_mask"],
            "roberta_special_literal": splits_special(roberta, text),
            "internvl_ids": i["input_ids"],
            "internvl_special_literal": splits_special(llama, "summarize:" + text),
        })

    fixture = {
        "what": "RoBERTa (CLAP text) and LLaMA (InternVL-C text) ids computed by HF transformers' own slow tokenizers",
        "upstream": {f"src/transformers/{p}": {"commit": c, "sha256": d} for p, (c, d) in UPSTREAM_FILES.items()},
        "generator": "tools/reference/upstream_hf.py",
        "not_upstream": "tokenization_utils_base (special-token bookkeeping, truncation from the right, right padding), utils and "
                        "convert_slow_tokenizer are stand-ins in the generator; LlamaTokenizer runs with legacy=True (4.30.2's paths)",
        "calls": {
            "roberta": "RobertaTokenizer(vocab.json, merges.txt) + sanitize_special_tokens(); tok(text, padding='max_length', truncation=True, max_length=77)",
            "internvl": "LlamaTokenizer(tokenizer.model, add_eos_token=True, legacy=True) + sanitize_special_tokens(); pad_token=' '; "
                        "tok('summarize:' + text, max_length=80, truncation=True, padding='max_length')",
        },
        "tokenizers": {name: sha256(path) for name, path in files.items()},
        "cases": cases,
    }
    fixture_json.write(fixture, args.out)
    print(f"{len(cases)} texts; special literals split out: RoBERTa {sum(c['roberta_special_literal'] for c in cases)}, "
          f"LLaMA {sum(c['internvl_special_literal'] for c in cases)}; wrote {args.out}")


if __name__ == "__main__":
    main()
