#!/usr/bin/env python3
"""Regenerates the SentencePiece unigram fixtures of tests/test_spm_unigram.c.

Development only (the tests themselves need no Python): trains small models with the
`sentencepiece` pip package on text written here, builds a few tiny hand-made models, and
records what the library does with them (ids, normalized text, decoded text) in
spm_unigram_cases.txt. Run from anywhere:  python3 tests/data/spm_unigram_gen.py
Needs sentencepiece (the fixtures were made with 0.2.3) and the zstd command.
"""
import hashlib
import os
import random
import struct
import subprocess
import sys
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))

PARA = """Tokenizers turn text into integer ids. A unigram language model keeps a vocabulary of pieces with
log probabilities, and the Viterbi search picks the segmentation with the highest total score. SentencePiece
normalizes the input first: full-width letters such as ＡＢＣ and ｈｅｌｌｏ become ASCII, the ideographic
space　becomes a plain space, ligatures like ﬁ and ﬂ are split, and circled digits ①②③ turn into 1 2 3.
Compatibility characters, e.g. ㌔ or ™, expand to several letters.
Café, naïve, résumé, façade, jalapeño, Straße, Ærøskøbing, Zürich, São Paulo, Kraków, İstanbul.
東京は日本の首都です。日本語のテキストも少し含めます。カタカナ、ひらがな、漢字。
한국어 문장도 조금 넣습니다. Русский текст тоже здесь. Ελληνικά γράμματα. עברית. العربية. हिन्दी भाषा.
Numbers: 0123456789, 3.14159, 2,718, 1e-9, version 1.2.3, dates 2024-05-17, times 12:34:56.
Code: def f(x): return x * 2  # comment; if (a && b) { c++; } else { d--; }
Emoji are rare in training text 🙂 so they often become unknown pieces.
"""

SYLL = ("ka ki ku ke ko sa shi su se so ta chi tsu te to na ni nu ne no ha hi fu he ho ma mi mu me mo ya yu "
        "yo ra ri ru re ro wa n ba be bi bo bu da de di do du ga ge gi go gu pa pe pi po pu la le li lo lu str "
        "tr pl gr ing tion ment ness able er est ly").split()

# Normalization rules (normalization_rule_tsv): full-width ASCII, some ligatures and
# circled digits, multi-character keys (longest match), deletions, expansions with spaces.
RULES = ([("%X" % (0xFF21 + i), "%X" % (0x41 + i)) for i in range(26)] +
         [("%X" % (0xFF41 + i), "%X" % (0x61 + i)) for i in range(26)] +
         [("%X" % (0xFF10 + i), "%X" % (0x30 + i)) for i in range(10)] +
         [("3000", "20"), ("9", "20"), ("A", "20"), ("D", "20"), ("FB01", "66 69"), ("FB02", "66 6C"),
          ("2460", "31"), ("2461", "32"), ("2462", "33"), ("41 301", "C1"), ("65 301", "E9"), ("2122", "54 4D"),
          ("FDFA", "20 70 62 75 68 20"), ("71 71", "51"), ("71 71 71", "20 51 20"), ("200B", ""), ("2581", "5F")])
DENORM = [("51", "71 71"), ("5F", "2581")]

# Inputs every model sees.
TRICKY = ["", " ", "   ", "\t", "\n", "hello world", "  hello   world  ", "Hello, World!", "ｈｅｌｌｏ　ｗｏｒｌｄ",
          "ＡＢＣ１２３", "①②③ ④", "™ ㌔ ﬁﬂ", "café cafe\u0301 CAFE\u0301", "Straße", "東京は日本の首都です。", "한국어 문장",
          "русский текст", "🙂🦙", "a🙂b", "👩\u200d👩\u200d👧", "zero\u200bwidth", "\u2581", "\u2581\u2581x",
          "x\u2581", "\u2581 \u2581", "<s> </s> <unk>", "<sep>qq<sep>", "qq", "qqq", "qqqq q qqqqq",
          "Straße<sep>Straße", "\ufeffbom", "\u00a0nbsp\u00a0", "\u3000x\u3000", "line1\nline2\r\nline3",
          "tab\tsep", "x" * 40, "ab" * 20, "3.14159 2,718 1e-9", "def f(x): return x * 2  # c",
          "Ǆ ǅ Ⅻ ﾊﾟ ｶﾞ", "\u0085\u2028\u2029", "\x00\x01\x7f", "ﷺ", "e\u0301\u0301", "Ａ\u0301",
          "naïve résumé façade", "日本語のテキスト"]
TRICKY_BYTES = [b"\xff", b"\xc3", b"a\xffb", b"\xe2\x96", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                b"\x80abc", b"caf\xc3", b"\xef\xbc"]

POOL = (list("abcdefghijklmnopqrstuvwxyz ABCXYZ   .,!?0123") +
        ["  ", "\t", "\n", "\r\n", "\u3000", "ａ", "Ｚ", "０", "ｈｅｌｌｏ", "ﬁ", "ﬂ", "①", "②", "™", "㌔", "ﷺ", "é",
         "e\u0301", "A\u0301", "café", "Straße", "東京", "日本語", "한국어", "русский", "ελληνικά", "🙂", "🦙",
         "\u200b", "\u2581", "▁▁", " ▁", "qq", "qqq", "qqqq", "<sep>", "<ctl>", "<s>", "</s>", "<unk>", "\ufeff",
         "\u00a0", "\u2028", "½", "ǅ", "ﾊﾟ", "ｶﾞ", "Ⅻ", "\x00", "\x7f", "\u0085", "ka", "shi", "tion", "ment"])
BAD = [b"\xff", b"\xc3", b"\xe2\x96", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"]

LONG_WORDS = ("the of and to in is was for on as with by he at from his an were are which this be or has had "
              "not but first one their its new after who they two her she been other when there all during "
              "into school time may years more most only over city some world would where later up such used "
              "many can state about national out known university united then made ｆｕｌｌ ｗｉｄｔｈ "
              "café naïve 東京 ① ™ ﬁne Straße qq").split()


def long_text():
    """The deterministic text of the long-input test; test_spm_unigram.c builds the same."""
    s, out, n = 0x2545F491, [], 0
    while n < 200000:
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        w = LONG_WORDS[(s >> 16) % len(LONG_WORDS)].encode()
        sep = [b" ", b" ", b" ", b" ", b" ", b" ", b" ", b" ", b" ", b" ", b", ", b". ", b"  ", b"\n", b".\n", b"\t"][(s >> 8) & 15]
        out.append(w + sep)
        n += len(w) + len(sep)
    return b"".join(out)


def as_bytes(s):
    return s if isinstance(s, bytes) else s.encode()


def esc(b):
    out = []
    for ch in b.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def craft(path, pieces, dummy=False, byte_fallback=False):
    m = pb.ModelProto()
    for s, score, typ in [("<unk>", 0.0, 2), ("<s>", 0.0, 3)] + pieces:
        p = m.pieces.add()
        p.piece, p.score, p.type = s, score, typ
    if byte_fallback:
        for b in range(256):
            p = m.pieces.add()
            p.piece, p.type = "<0x%02X>" % b, 6
    t = m.trainer_spec
    t.model_type, t.vocab_size, t.byte_fallback = 1, len(m.pieces), byte_fallback
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = 0, 1, -1, -1
    n = m.normalizer_spec
    n.name, n.add_dummy_prefix, n.remove_extra_whitespaces, n.escape_whitespaces = "identity", dummy, False, False
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def main():
    tmp = tempfile.mkdtemp()
    rnd = random.Random(7)
    words = ["".join(rnd.choice(SYLL) for _ in range(rnd.randint(1, 4))) for _ in range(600)]
    text = [PARA] * 3 + [" ".join(rnd.choice(words) for _ in range(rnd.randint(4, 14))) + rnd.choice([".", ",", "!", "?", ""])
                         for _ in range(250)]
    train = os.path.join(tmp, "train.txt")
    with open(train, "w") as f:
        f.write("\n".join(text) + "\n")
    with open(os.path.join(tmp, "rules.tsv"), "w") as f:
        f.writelines("%s\t%s\n" % r for r in RULES)
    with open(os.path.join(tmp, "denorm.tsv"), "w") as f:
        f.writelines("%s\t%s\n" % r for r in DENORM)

    def train_model(name, **kw):
        spm.SentencePieceTrainer.train(input=train, model_prefix=os.path.join(tmp, name), minloglevel=2, **kw)
        return os.path.join(tmp, name + ".model")

    models = {
        # nmt_nfkc (the default rule) is what T5, ALBERT and most unigram models carry.
        "spm_ug_nmt.model": train_model("nmt", vocab_size=400, model_type="unigram"),
        "spm_ug_bytes.model": train_model("bytes", vocab_size=500, model_type="unigram",
                                          normalization_rule_name="identity", byte_fallback=True,
                                          character_coverage=0.98),
        "spm_ug_rules.model": train_model("rules", vocab_size=350, model_type="unigram",
                                          normalization_rule_tsv=os.path.join(tmp, "rules.tsv"),
                                          denormalization_rule_tsv=os.path.join(tmp, "denorm.tsv"),
                                          user_defined_symbols=["<sep>", "qq", "Straße"], control_symbols=["<ctl>"],
                                          remove_extra_whitespaces=False),
        "spm_bpe_rules.model": train_model("bpe", vocab_size=500, model_type="bpe",
                                           normalization_rule_tsv=os.path.join(tmp, "rules.tsv"),
                                           byte_fallback=True, character_coverage=0.98),
    }
    # Hand-made vocabularies for the library's arithmetic: user-defined scores, float ties,
    # the rebase of large path scores, hostile magnitudes, no NORMAL piece at all.
    crafted = {
        "spm_ug_craft_user.model": ([("a", -1.5, 1), ("b", -2.25, 1), ("ab", -3.0, 1), ("é", -2.0, 1), ("aa", 0.0, 4),
                                     ("aaa", 0.0, 4), ("éé", -1.0, 4), ("a" * 10, 0.0, 4), ("b" * 14, 0.0, 4),
                                     ("ba", -0.2, 5), ("bbb", -4.0, 1)], True, False),
        "spm_ug_craft_ties.model": ([("a", -1.0, 1), ("b", 2.0 ** -25, 1), ("ab", -1.0, 1), ("c", 1000.0, 1),
                                     ("d", 2.0 ** -15, 1), ("cd", 1000.0, 1), ("e", 2e5, 1), ("f", 2.0 ** -130, 1),
                                     ("ef", 2e5, 1), ("g", 100001.0, 1), ("ghi", 0.3014000058, 1),
                                     ("hi", -100000.6875, 1)], False, True),
        "spm_ug_craft_huge.model": ([("b", -2e38, 1), ("bbq", 0.0, 1), ("qb", 0.0, 1), ("cba", -159717.8, 1),
                                     ("ccb", 3e5, 1), ("bcb", 149604.282, 1), ("cb", 197583.0, 1), ("aaa", -3e38, 1),
                                     ("ca", -3e38, 1), ("ac", 0.0, 4)], False, False),
        "spm_ug_craft_nonormal.model": ([("bc", 0.0, 4), ("東 ", 0.0, 4), ("zz", -3.0, 5)], False, False),
    }
    for name, (pieces, dummy, bf) in crafted.items():
        craft(os.path.join(tmp, name), pieces, dummy, bf)
        models[name] = os.path.join(tmp, name)

    lines = ["# Generated by spm_unigram_gen.py with sentencepiece %s; do not edit." % spm.__version__,
             "# case<TAB>model<TAB>input<TAB>ids<TAB>normalized<TAB>decoded   (\\\\ \\t \\n \\r \\xNN escapes)",
             "# long<TAB>model<TAB>number of ids<TAB>sha256 of the ids as little-endian uint32",
             "# allchars<TAB>model<TAB>sha256 of normalize(c) + NUL over every Unicode scalar value c",
             "# file<TAB>model<TAB>path under ../shared<TAB>number of ids<TAB>sha256 (the file encoded as one text)"]
    shared = os.path.join(HERE, "..", "..", "..", "shared")
    wiki = "data/wikitext-2/wiki.test.raw"
    long_input = long_text()
    for name, path in models.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        rr = random.Random(name)
        if "craft" in name:
            alpha = {"user": "abé x", "ties": "abcdefghix", "huge": "abcqx", "nonormal": "abc東 x"}[name.split("_")[3][:-6]]
            inputs = [b""] + [("".join(rr.choice(alpha) for _ in range(rr.randint(1, 24)))).encode() for _ in range(30)]
            inputs += [s.encode() for s in ["ab", "cd", "ef", "ghi", "aa", "aaa", "aaaa", "a" * 10, "a" * 11, "b" * 14,
                                            "ééé", "aéééé", "bbqb", "bbbqb", "aabcbabcb", "bcabcb", "aé東 x", "aabc"]]
        else:
            inputs = [s.encode() for s in TRICKY] + TRICKY_BYTES
            for _ in range(18):
                parts = [rr.choice(BAD) if rr.random() < 0.08 else rr.choice(POOL).encode() for _ in range(rr.randint(1, 10))]
                inputs.append(b"".join(parts))
        for x in inputs:
            ids = sp.encode(x)
            lines.append("case\t%s\t%s\t%s\t%s\t%s" % (name, esc(x), " ".join(map(str, ids)),
                                                       esc(as_bytes(sp.normalize(x))), esc(as_bytes(sp.decode(ids)))))
        if "craft" not in name:
            ids = sp.encode(long_input)
            digest = hashlib.sha256(b"".join(struct.pack("<I", i) for i in ids)).hexdigest()
            lines.append("long\t%s\t%d\t%s" % (name, len(ids), digest))
            if os.path.exists(os.path.join(shared, wiki)):
                with open(os.path.join(shared, wiki), "rb") as f:
                    ids = sp.encode(f.read())
                digest = hashlib.sha256(b"".join(struct.pack("<I", i) for i in ids)).hexdigest()
                lines.append("file\t%s\t%s\t%d\t%s" % (name, wiki, len(ids), digest))
        if name in ("spm_ug_nmt.model", "spm_ug_rules.model"):
            h = hashlib.sha256()
            for cp in range(0x110000):
                if 0xD800 <= cp <= 0xDFFF:
                    continue
                h.update(as_bytes(sp.normalize(chr(cp))) + b"\0")
            lines.append("allchars\t%s\t%s" % (name, h.hexdigest()))

    for name, path in models.items():
        if name == "spm_ug_nmt.model":
            subprocess.run(["zstd", "-19", "-q", "-f", path, "-o", os.path.join(HERE, name + ".zst")], check=True)
        else:
            with open(path, "rb") as src, open(os.path.join(HERE, name), "wb") as dst:
                dst.write(src.read())
    with open(os.path.join(HERE, "spm_unigram_cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d lines" % len(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
