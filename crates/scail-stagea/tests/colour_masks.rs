//! Composing what the model reads (no ONNX Runtime needed): palette masks per mode, the
//! masked driving frame, and the reference mask from an alpha channel.

mod common;

use common::rect;
use scail_media::mask::{BLACK, PALETTE, WHITE};
use scail_stagea::compose::{
    colour_mask_frame, decode_palette_mask, mask_from_alpha, masked_frame,
};
use scail_stagea::{Mode, ModeMasks, RgbImage};

#[test]
fn palette_and_background_per_mode() {
    assert_eq!(PALETTE[0], [0, 0, 255]);
    assert_eq!(PALETTE[1], [255, 0, 0]);
    assert_eq!(Mode::Animation.reference_background(), WHITE);
    assert_eq!(Mode::Animation.driving_background(), BLACK);
    assert_eq!(Mode::Replacement.reference_background(), BLACK);
    assert_eq!(Mode::Replacement.driving_background(), WHITE);
    let (a, b) = (rect(0, 0, 40, 100), rect(60, 0, 100, 100));
    for mode in [Mode::Animation, Mode::Replacement] {
        let r = colour_mask_frame(100, 100, &[Some(&a), Some(&b)], mode.reference_background())
            .unwrap();
        assert_eq!(r.rgb(10, 10), PALETTE[0]);
        assert_eq!(r.rgb(80, 10), PALETTE[1]);
        assert_eq!(r.rgb(50, 10), mode.reference_background());
        // And back: the decoder recovers both masks exactly whatever the background.
        let back = decode_palette_mask(&r);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].as_ref().unwrap(), &a);
        assert_eq!(back[1].as_ref().unwrap(), &b);
    }
    assert!(colour_mask_frame(
        100,
        100,
        &[Some(&rect(0, 0, 1, 1).resize_nearest(50, 50))],
        BLACK
    )
    .is_err());
}

#[test]
fn masked_driving_frame_blacks_out_everything_but_subjects() {
    let mut frame = RgbImage::filled_rgb(100, 100, [0, 0, 0]);
    for (i, v) in frame.data.iter_mut().enumerate() {
        *v = (i % 251) as u8 | 1;
    }
    let (a, b) = (rect(0, 0, 10, 10), rect(90, 90, 100, 100));
    let out = masked_frame(&frame, &[Some(&a), None, Some(&b)]).unwrap();
    for y in 0..100 {
        for x in 0..100 {
            let inside = a.get(x, y) || b.get(x, y);
            let (px, py) = (x as usize, y as usize);
            assert_eq!(
                out.rgb(px, py),
                if inside { frame.rgb(px, py) } else { BLACK }
            );
        }
    }
}

#[test]
fn alpha_channel_gives_the_reference_mask() {
    let (w, h) = (4u32, 2u32);
    let mut rgba = vec![255u8; (w * h * 4) as usize];
    assert!(mask_from_alpha(w, h, &rgba).unwrap().is_none());
    rgba[3] = 0;
    rgba[7] = 127;
    rgba[11] = 128;
    let m = mask_from_alpha(w, h, &rgba).unwrap().unwrap();
    assert_eq!(m.data, vec![0, 0, 1, 1, 1, 1, 1, 1]);
    assert!(mask_from_alpha(w, h, &rgba[1..]).is_err());
}
