//! umT5 tokenizer with the reference's text cleaning, on a small Unigram tokenizer.json
//! (testdata/tokenizer.json, written by scripts/make_testdata_tokenizer.py).
//! Vocabulary: 0 <pad>, 1 </s>, 2 <unk>, 3 ▁, 4 ▁A, 5 ▁man, 6 ▁dances, 7 ▁in, 8 ▁the,
//! 9 ▁rain, 10 ▁it, 11 's, 12 ▁fine, 13 ▁a, 14 &, 15 ▁fish, 16 ▁&.

use scail_model::tokenizer::{clean_prompt, html_unescape, T5Tokenizer, MAX_TOKENS};

fn tok() -> T5Tokenizer {
    T5Tokenizer::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/tokenizer.json"
    ))
    .unwrap()
}

#[test]
fn encodes_with_eos_and_cleaning() {
    let t = tok();
    assert_eq!(t.eos_id(), 1);
    assert_eq!(
        t.encode("A man dances in the rain").unwrap(),
        vec![4, 5, 6, 7, 8, 9, 1]
    );
    // Whitespace runs, tabs, newlines and a doubly escaped non-breaking space collapse.
    assert_eq!(
        t.encode("  A man\t\tdances&amp;nbsp;in\r\n the   rain  ")
            .unwrap(),
        vec![4, 5, 6, 7, 8, 9, 1]
    );
    // Curly apostrophe is straightened, full-width letters become ASCII.
    assert_eq!(
        t.encode("it\u{2019}s ｆｉｎｅ").unwrap(),
        vec![10, 11, 12, 1]
    );
    // Entities: `&amp;amp;` unescapes twice to a bare `&`.
    assert_eq!(
        t.encode("fish &amp;amp; a").unwrap(),
        t.encode("fish & a").unwrap()
    );
    assert_eq!(t.encode("").unwrap(), vec![1]);
}

#[test]
fn truncates_to_512_keeping_eos() {
    let t = tok();
    let long = "a ".repeat(1000);
    let ids = t.encode(&long).unwrap();
    assert_eq!(ids.len(), MAX_TOKENS);
    assert!(ids[..MAX_TOKENS - 1].iter().all(|&i| i == 13));
    assert_eq!(*ids.last().unwrap(), 1);
}

#[test]
fn cleaning_rules() {
    assert_eq!(clean_prompt("  a\u{a0}\u{3000}b\n\nc  "), "a b c");
    assert_eq!(clean_prompt("\u{201c}hi\u{201d} \u{fb01}ne"), "\"hi\" fine");
    assert_eq!(
        html_unescape("&lt;b&gt; &#39;x&#x27; &bogus; & &amp &ampx"),
        "<b> 'x' &bogus; & & &x"
    );
    assert_eq!(clean_prompt("x&amp;lt;y"), "x<y");
    // NFC: e + combining acute becomes the precomposed letter.
    assert_eq!(clean_prompt("e\u{301}"), "\u{e9}");
}
