#!/usr/bin/env python3
"""Write a tiny Gemma-style tokenizer.json and golden ids computed by HF tokenizers.

Pinned: tokenizers==0.23.3 (pip install tokenizers==0.23.3).  Run from this folder:
    python3 gen_tokenizer_golden.py
Outputs (committed, small): tok_small.json, tok_small_golden.tsv, tok_nobytes.json,
tok_nobytes_golden.tsv.  Each golden line is: hex(UTF-8 text) TAB space-separated ids
(tokenizer.encode(text, add_special_tokens=False).ids).
"""
import json
import random

import tokenizers
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, trainers

CORPUS = [
    "Describe the image.", "Question: What is the total revenue in 2023?",
    "Query: Which table shows the quarterly results?", "the the the image image",
    "Revenue grew by 12% year over year, driven by cloud services.",
    "A chart of monthly sales; a table of expenses and a figure with labels.",
    "Les résultats financiers du troisième trimestre sont en hausse.",
    "Die Umsätze stiegen im Jahr 2023 deutlich.", "数据表显示了季度收入。",
    "  leading spaces and   runs of    spaces  ", "tabs\tand\nnewlines\n\nhere",
] * 20


def build(byte_tokens=True):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    merges = data["model"]["merges"]
    nxt = max(vocab.values()) + 1
    # Gemma-like extras in the model vocab: newline runs, the 'tab' piece, bytes, loc tokens
    for extra in ["\n", "\n\n", "\u2581\u2581", "\t"]:
        if extra not in vocab:
            vocab[extra] = nxt
            nxt += 1
    for b in range(256):
        if not byte_tokens and b >= 0xE0:
            continue            # no byte tokens for 3/4-byte lead bytes: unk path
        code = "<0x%02X>" % b
        if code not in vocab:
            vocab[code] = nxt
            nxt += 1
    for i in range(4):
        vocab["<loc%04d>" % i] = nxt
        nxt += 1
    bpe = models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges],
                     unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    t = Tokenizer(bpe)
    t.normalizer = normalizers.Replace(" ", "\u2581")
    t.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    specials = [AddedToken(s, normalized=False, special=True) for s in ["<pad>", "<eos>", "<bos>", "<unk>"]]
    t.add_special_tokens(specials)
    t.add_tokens([AddedToken("\n", normalized=False), AddedToken("\n\n", normalized=False),
                  AddedToken("\u2581\u2581", normalized=False), AddedToken("<table>", normalized=False)])
    t.add_special_tokens([AddedToken("<image>", normalized=False, special=True)])
    # loc tokens as the processor adds them: normalized, non-special
    t.add_tokens([AddedToken("<loc%04d>" % i, normalized=True) for i in range(4)])
    # a normalized added token with a space inside (matched in normalized form)
    t.add_tokens([AddedToken("big deal", normalized=True)])
    return t


def texts():
    out = [
        "", " ", "  ", "a", "Describe the image.", "Question: What is the total revenue in 2023?",
        "<bos>Question: What is X?<pad><pad><pad><pad><pad><pad><pad><pad><pad><pad>\n",
        "<image><image><bos>Describe the image.\n", "the\n\nimage\n\n\nend", "x\u2581\u2581\u2581y",
        "<loc0001><loc0003> box", "this is a big deal, a big  deal", "<table>a</table>",
        "emoji \U0001F600\U0001F600 and \u00e9\u00e8 and \u4e2d\u6587 end", "\u00e9\u4e2d\U0001F600x\U0001F600",
        "tab\there", "<bo", "<bos", "<<bos>>", "<pad><pad>", "nul\x00byte", "\u2581leading marker",
        "Les r\u00e9sultats financiers du troisi\u00e8me trimestre", "\u6570\u636e\u8868\u663e\u793a",
        "   ", "\n", "\n\n\n", "a\n \n b", "  leading spaces and   runs of    spaces  ",
    ]
    rnd = random.Random(1234)
    alphabet = list("abcdefghijklmnopqrstuvwxyz      .,;:!?\n\t0123456789") + \
        ["\u00e9", "\u00fc", "\u4e2d", "\U0001F600", "<bos>", "<image>", "<loc0002>", "\u2581"]
    for n in (10, 50, 200, 3000):
        out.append("".join(rnd.choice(alphabet) for _ in range(n)))
    words = " ".join(CORPUS).split(" ")
    out.append(" ".join(rnd.choice(words) for _ in range(2000)))
    return out


def write(name, t):
    t.save(name + ".json")
    # re-load from the file, as users do
    t2 = Tokenizer.from_file(name + ".json")
    with open(name + "_golden.tsv", "w") as f:
        for s in texts():
            ids = t2.encode(s, add_special_tokens=False).ids
            f.write(s.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids) + "\n")


def build_features():
    """Every other pipeline feature we implement: Prepend + Replace, Split
    Isolated / Contiguous / Removed / MergedWithNext, ignore_merges, fuse_unk off,
    no byte fallback, merges as "a b" strings, a normalized added token with a
    space."""
    doc = {
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<pad>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 2, "content": "<bos>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 16, "content": "x y", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "\u2581"}, "behavior": "Isolated", "invert": False},
            {"type": "Split", "pattern": {"String": "b"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"String": "c"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"String": "d"}, "behavior": "MergedWithNext", "invert": False}]},
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {"<pad>": 0, "<unk>": 1, "<bos>": 2, "a": 3, "b": 4, "ab": 5, "\u2581": 6,
                            "\u2581a": 7, "bb": 8, "abb": 9, "d": 10, "da": 11, "aab": 13, "aa": 14,
                            "bbb": 15, "zz": 12},
                  "merges": ["a b", "\u2581 a", "b b", "a bb", "d a", "a a"]}}
    return Tokenizer.from_str(json.dumps(doc))


def feature_texts():
    return ["", "a", "ab", "abb", "abbb", "aab", "aabbb", " a b", "x y", "x  y", "ax yb", "dada d", "cacbc",
            "d", "dd", "bcd", "zz", "a\u00e9z", "<bos>ab<pad> abb", "  ", "aaaa", "aabb bbaa", "ccc", "dcd"]


if __name__ == "__main__":
    write("tok_small", build(True))
    write("tok_nobytes", build(False))
    feat = build_features()
    feat.save("tok_features.json")
    with open("tok_features_golden.tsv", "w") as f:
        for s in feature_texts():
            ids = Tokenizer.from_file("tok_features.json").encode(s, add_special_tokens=False).ids
            f.write(s.encode("utf-8").hex() + "\t" + " ".join(str(i) for i in ids) + "\n")
    with open("VERSIONS", "w") as f:
        f.write("tokenizers %s\n" % tokenizers.__version__)
