//! The umT5 tokenizer: the `tokenizer.json` shipped with the weights, run through the
//! `tokenizers` crate, after the reference's text cleaning (`basic_clean` + `whitespace_clean`
//! of Wan's `HuggingfaceTokenizer(clean='whitespace')`), with `</s>` appended and at most 512
//! tokens.

use std::path::Path;

/// umT5's context length.
pub const MAX_TOKENS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("reading tokenizer {path}: {msg}")]
    Load { path: String, msg: String },
    #[error("tokenizer has no end-of-sequence token `</s>`")]
    NoEos,
    #[error("tokenizing prompt: {0}")]
    Encode(String),
}

/// Prompt → token ids for the umT5 encoder.
pub struct T5Tokenizer {
    inner: tokenizers::Tokenizer,
    eos: u32,
    max_len: usize,
}

impl T5Tokenizer {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Self::new(inner)
    }

    pub fn from_bytes(json: &[u8]) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| TokenizerError::Load {
            path: "<memory>".into(),
            msg: e.to_string(),
        })?;
        Self::new(inner)
    }

    fn new(inner: tokenizers::Tokenizer) -> Result<Self, TokenizerError> {
        let eos = inner.token_to_id("</s>").ok_or(TokenizerError::NoEos)?;
        Ok(Self {
            inner,
            eos,
            max_len: MAX_TOKENS,
        })
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Cleaned, tokenized prompt with `</s>` last, truncated to 512 tokens (EOS kept), no
    /// padding: the encoder output is trimmed to this length anyway.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>, TokenizerError> {
        let text = clean_prompt(prompt);
        // Special tokens are added here rather than by the file's post-processor, so a
        // tokenizer.json with or without the `$A </s>` template gives the same ids.
        let enc = self
            .inner
            .encode(text.as_str(), false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        ids.truncate(self.max_len - 1);
        ids.push(self.eos);
        Ok(ids)
    }
}

/// The reference's `whitespace_clean(basic_clean(text))`: text repair (the parts of ftfy that
/// change prompts in practice: curly quotes, ligatures, full-width forms, line breaks, control
/// characters, NFC), HTML entities unescaped twice, every whitespace run collapsed to one
/// space, trimmed.
pub fn clean_prompt(text: &str) -> String {
    let fixed = fix_text(text);
    let once = html_unescape(&fixed);
    let twice = html_unescape(&once);
    let mut out = String::with_capacity(twice.len());
    let mut in_space = false;
    for c in twice.trim_matches(is_py_space).chars() {
        if is_py_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Python's `str.isspace` (what `\s` matches in `re` on text), which also counts the ASCII
/// information separators.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' => out.push('\''),
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' => out.push('"'),
            '\u{fb00}' => out.push_str("ff"),
            '\u{fb01}' => out.push_str("fi"),
            '\u{fb02}' => out.push_str("fl"),
            '\u{fb03}' => out.push_str("ffi"),
            '\u{fb04}' => out.push_str("ffl"),
            '\u{fb05}' | '\u{fb06}' => out.push_str("st"),
            // Full-width ASCII and the ideographic space become their ordinary forms.
            '\u{ff01}'..='\u{ff5e}' => out.push(char::from_u32(c as u32 - 0xfee0).unwrap_or(c)),
            '\u{3000}' => out.push(' '),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            // Control characters other than tab / newline are dropped, as ftfy does.
            c if c.is_control()
                && c != '\t'
                && c != '\n'
                && !('\u{1c}'..='\u{1f}').contains(&c) => {}
            c => out.push(c),
        }
    }
    let mut n = tokenizers::NormalizedString::from(out.as_str());
    n.nfc();
    n.get().to_string()
}

/// `html.unescape` for numeric references and the named entities that occur in prompts.
pub fn html_unescape(s: &str) -> String {
    const NAMED: &[(&str, &str)] = &[
        ("amp", "&"),
        ("lt", "<"),
        ("gt", ">"),
        ("quot", "\""),
        ("apos", "'"),
        ("nbsp", "\u{a0}"),
        ("ndash", "\u{2013}"),
        ("mdash", "\u{2014}"),
        ("hellip", "\u{2026}"),
        ("lsquo", "\u{2018}"),
        ("rsquo", "\u{2019}"),
        ("ldquo", "\u{201c}"),
        ("rdquo", "\u{201d}"),
        ("copy", "\u{a9}"),
        ("reg", "\u{ae}"),
        ("trade", "\u{2122}"),
        ("deg", "\u{b0}"),
        ("times", "\u{d7}"),
        ("eacute", "\u{e9}"),
    ];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 1..];
        let end = tail.find(';').filter(|&e| e <= 32);
        let decoded = end.and_then(|e| {
            let name = &tail[..e];
            let ch = if let Some(num) = name.strip_prefix('#') {
                let v = if let Some(h) = num.strip_prefix(['x', 'X']) {
                    u32::from_str_radix(h, 16).ok()
                } else {
                    num.parse::<u32>().ok()
                };
                v.map(|v| char::from_u32(v).unwrap_or('\u{fffd}').to_string())
            } else {
                NAMED
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push_str(&c);
                rest = &tail[e + 1..];
            }
            None => {
                // Like Python, the legacy entities also decode without their semicolon.
                match ["amp", "lt", "gt", "quot", "nbsp"]
                    .iter()
                    .find(|n| tail.starts_with(**n))
                {
                    Some(n) => {
                        out.push_str(
                            NAMED
                                .iter()
                                .find(|(m, _)| m == n)
                                .map(|(_, v)| *v)
                                .unwrap_or(""),
                        );
                        rest = &tail[n.len()..];
                    }
                    None => {
                        out.push('&');
                        rest = tail;
                    }
                }
            }
        }
    }
    out.push_str(rest);
    out
}
