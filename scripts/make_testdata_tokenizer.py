#!/usr/bin/env python3
"""Writes crates/scail-model/testdata/tokenizer.json: a tiny SentencePiece-Unigram tokenizer in
the layout of umT5's tokenizer.json (ids 0/1/2 = <pad>/</s>/<unk>, Metaspace pre-tokenizer,
`$A </s>` template), for the tokenizer tests. Standard library only."""
import json
import os
import string

words = ["\u2581A", "\u2581man", "\u2581dances", "\u2581in", "\u2581the", "\u2581rain",
         "\u2581it", "'s", "\u2581fine", "\u2581a", "&", "\u2581fish", "\u2581&"]
vocab = [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581", -5.0]]
vocab += [[w, -1.0] for w in words]
vocab += [[c, -10.0] for c in string.ascii_letters + "'"]

special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True} for i, t in enumerate(["<pad>", "</s>", "<unk>"])]
meta = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": special,
    "normalizer": None,
    "pre_tokenizer": meta,
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}},
    },
    "decoder": meta,
    "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": False},
}
out = os.path.join(os.path.dirname(__file__), "..", "crates", "scail-model", "testdata", "tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
print("wrote", os.path.normpath(out), len(vocab), "pieces")
