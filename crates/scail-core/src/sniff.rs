//! What a file is, by its first bytes (never by its name or declared type). The one copy: the
//! server's fetcher and the media decoders both ask it.

use crate::schema::MediaKind;

/// How many leading bytes [`sniff`] needs at most.
pub const SNIFF_BYTES: usize = 189;

/// Identifies media by its first bytes; returns (kind, mime).
pub fn sniff(head: &[u8]) -> Option<(MediaKind, &'static str)> {
    let h = head;
    if h.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((MediaKind::Image, "image/png"));
    }
    if h.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some((MediaKind::Image, "image/jpeg"));
    }
    if h.len() >= 12 && &h[0..4] == b"RIFF" && &h[8..12] == b"WEBP" {
        return Some((MediaKind::Image, "image/webp"));
    }
    if h.starts_with(b"BM") && h.len() > 14 {
        return Some((MediaKind::Image, "image/bmp"));
    }
    if h.starts_with(b"GIF87a") || h.starts_with(b"GIF89a") {
        // Animated GIFs are accepted as driving videos; a still GIF is an image.
        return Some((MediaKind::Any, "image/gif"));
    }
    if h.len() >= 12 && &h[4..8] == b"ftyp" {
        let brand = &h[8..12];
        if brand == b"avif" || brand == b"avis" {
            return Some((MediaKind::Image, "image/avif"));
        }
        if brand == b"qt  " {
            return Some((MediaKind::Video, "video/quicktime"));
        }
        return Some((MediaKind::Video, "video/mp4"));
    }
    if h.len() >= 8 && (&h[4..8] == b"moov" || &h[4..8] == b"mdat" || &h[4..8] == b"wide") {
        return Some((MediaKind::Video, "video/quicktime"));
    }
    if h.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some((MediaKind::Video, "video/webm"));
    }
    if h.len() >= 12 && &h[0..4] == b"RIFF" && &h[8..11] == b"AVI" {
        return Some((MediaKind::Video, "video/x-msvideo"));
    }
    if h.starts_with(b"FLV") {
        return Some((MediaKind::Video, "video/x-flv"));
    }
    if h.starts_with(b"OggS") {
        return Some((MediaKind::Video, "video/ogg"));
    }
    if h.len() > 188 && h[0] == 0x47 && h[188] == 0x47 {
        return Some((MediaKind::Video, "video/mp2t"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap().0, MediaKind::Image);
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]).unwrap().1, "image/jpeg");
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0").unwrap().1, "video/mp4");
        assert_eq!(
            sniff(b"\0\0\0\x14ftypqt  \0\0").unwrap().1,
            "video/quicktime"
        );
        assert_eq!(
            sniff(&[0x1a, 0x45, 0xdf, 0xa3, 0]).unwrap().0,
            MediaKind::Video
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI LIST").unwrap().0, MediaKind::Video);
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap().0, MediaKind::Image);
        assert!(sniff(b"<html><body>hello</body></html>").is_none());
    }
}
