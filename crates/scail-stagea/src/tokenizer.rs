//! CLIP byte-level BPE, enough for SAM3's text prompts, read from a `tokenizer.json`
//! (Hugging Face layout: `model.vocab`, `model.merges`, `added_tokens`).
//!
//! The text goes through the steps of transformers' `CLIPTokenizer`: NFC, whitespace runs
//! collapsed to one space, lower case, then CLIP's word pattern (English contractions, letter
//! runs, single digits, symbol runs), byte-level BPE with `</w>` ending each word, and
//! `<|startoftext|>` ... `<|endoftext|>` around it. A symbol missing from the vocabulary is the
//! unknown token when the file names one (CLIP's is `<|endoftext|>`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::StageAError;

pub const CONTEXT_LENGTH: usize = 32;

pub struct ClipTokenizer {
    vocab: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_map: [char; 256],
    bos: i64,
    eos: i64,
    unk: Option<i64>,
}

/// GPT-2/CLIP's reversible byte -> printable character map.
fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut out = ['\0'; 256];
    for &b in &printable {
        out[b as usize] = char::from_u32(b).unwrap();
    }
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            out[b as usize] = char::from_u32(256 + n).unwrap();
            n += 1;
        }
    }
    printable.clear();
    out
}

fn bad(path: &Path, what: &str) -> StageAError {
    StageAError::Invalid(format!("tokenizer {}: {what}", path.display()))
}

impl ClipTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, StageAError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, &e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(path, &e.to_string()))?;
        let model = &json["model"];
        let mut vocab: HashMap<String, i64> = model["vocab"]
            .as_object()
            .ok_or_else(|| bad(path, "no model.vocab"))?
            .iter()
            .filter_map(|(k, v)| v.as_i64().map(|i| (k.clone(), i)))
            .collect();
        for t in json["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(c), Some(id)) = (t["content"].as_str(), t["id"].as_i64()) {
                vocab.insert(c.to_string(), id);
            }
        }
        let mut ranks = HashMap::new();
        for (i, m) in model["merges"]
            .as_array()
            .ok_or_else(|| bad(path, "no model.merges"))?
            .iter()
            .enumerate()
        {
            // Older files write "a b", newer ones ["a", "b"].
            let pair = match m {
                serde_json::Value::String(s) => s
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(a) if a.len() == 2 => Some((
                    a[0].as_str().unwrap_or("").into(),
                    a[1].as_str().unwrap_or("").into(),
                )),
                _ => None,
            };
            if let Some(p) = pair {
                ranks.entry(p).or_insert(i);
            }
        }
        let bos = *vocab
            .get("<|startoftext|>")
            .ok_or_else(|| bad(path, "no <|startoftext|> token"))?;
        let eos = *vocab
            .get("<|endoftext|>")
            .ok_or_else(|| bad(path, "no <|endoftext|> token"))?;
        let unk = model["unk_token"]
            .as_str()
            .and_then(|t| vocab.get(t).copied());
        Ok(Self {
            vocab,
            ranks,
            byte_map: bytes_to_unicode(),
            bos,
            eos,
            unk,
        })
    }

    /// CLIP's normalisation and word split.
    fn words(text: &str) -> Vec<String> {
        static SPACES: OnceLock<Regex> = OnceLock::new();
        static WORDS: OnceLock<Regex> = OnceLock::new();
        let spaces = SPACES.get_or_init(|| Regex::new(r"\s+").expect("valid pattern"));
        let words = WORDS.get_or_init(|| {
            Regex::new(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
                .expect("valid pattern")
        });
        let nfc: String = text.nfc().collect();
        let lower = spaces.replace_all(&nfc, " ").to_lowercase();
        words
            .find_iter(&lower)
            .map(|m| m.as_str().to_string())
            .collect()
    }

    fn bpe(&self, word: &str) -> Vec<String> {
        let mut syms: Vec<String> = word
            .bytes()
            .map(|b| self.byte_map[b as usize].to_string())
            .collect();
        if let Some(last) = syms.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = (0..syms.len().saturating_sub(1))
                .filter_map(|i| {
                    self.ranks
                        .get(&(syms[i].clone(), syms[i + 1].clone()))
                        .map(|&r| (r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", syms[i], syms[i + 1]);
            syms.splice(i..i + 2, [merged]);
        }
        syms
    }

    /// Token ids for `text`: BOS, tokens, EOS, padded with EOS to 32 (attention 0 there).
    pub fn encode(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>), StageAError> {
        let mut ids = vec![self.bos];
        for w in Self::words(text) {
            for s in self.bpe(&w) {
                let id = self.vocab.get(&s).copied().or(self.unk).ok_or_else(|| {
                    StageAError::Invalid(format!(
                        "prompt {text:?}: token {s:?} is not in the tokenizer vocabulary, \
                         which names no unknown token"
                    ))
                })?;
                ids.push(id);
            }
        }
        ids.truncate(CONTEXT_LENGTH - 1);
        ids.push(self.eos);
        let mut mask = vec![1i64; ids.len()];
        ids.resize(CONTEXT_LENGTH, self.eos);
        mask.resize(CONTEXT_LENGTH, 0);
        Ok((ids, mask))
    }
}
