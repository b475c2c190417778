//! Unit tests of `memory` (kept apart: the module is long enough).

use super::*;
use crate::checkpoint::ModelSize;

fn cpu(offload: Offload) -> Placement {
    Placement {
        offload,
        ..Placement::default()
    }
}

fn gpu(offload: Offload) -> Placement {
    Placement {
        offload,
        on_gpu: true,
        ..Placement::default()
    }
}

#[test]
fn a_dit_loaded_after_the_text_encode_never_sits_beside_umt5() {
    let c = Contract::new(ModelSize::FourteenB);
    let w = WeightBytes::for_contract(&c, DType::BF16, false);
    let s = shape(64, 64, 17);
    let both = estimate(&w, &c.dit, &s, cpu(Offload::None));
    let after = Placement {
        dit_after_t5: true,
        ..cpu(Offload::None)
    };
    let after = estimate(&w, &c.dit, &s, after);
    // At a small size (activations far below umT5's 11 GB) that saves about umT5 whole.
    let saved = both.host - after.host;
    assert!(saved > w.t5.total() * 9 / 10, "{both:?} {after:?}");
    assert!(after.host > w.dit.total(), "{after:?}");
}

fn shape(width: usize, height: usize, frames: usize) -> JobShape {
    JobShape {
        width,
        height,
        segment_frames: frames,
        total_frames: frames,
        branches: 2,
    }
}

#[test]
fn the_14b_weights_add_up_to_their_parameter_counts() {
    let c = Contract::new(ModelSize::FourteenB);
    let w = WeightBytes::for_contract(&c, DType::F32, false);
    let params = |keys: Vec<(String, Vec<usize>)>| -> u64 {
        keys.iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    };
    assert_eq!(w.dit.total(), 4 * params(c.dit.weight_shapes()));
    assert_eq!(w.t5.total(), 4 * params(c.t5.expected_keys()));
    assert_eq!(w.dit.blocks, w.dit.largest_block * c.dit.num_layers as u64);
    // fp8 stores the block matrices at one byte: about a quarter of f32.
    let fp8 = WeightBytes::for_contract(&c, DType::BF16, true);
    assert!(fp8.dit.blocks * 3 < w.dit.blocks, "{fp8:?}");
    assert!(fp8.dit.blocks > w.dit.blocks / 4);
}

#[test]
fn stream_holds_a_fraction_of_none_and_blocks_equals_none_on_the_cpu() {
    let c = Contract::new(ModelSize::FourteenB);
    let w = WeightBytes::for_contract(&c, DType::F32, false);
    let s = shape(64, 64, 17);
    let none = estimate(&w, &c.dit, &s, cpu(Offload::None));
    let blocks = estimate(&w, &c.dit, &s, cpu(Offload::Blocks));
    let stream = estimate(&w, &c.dit, &s, cpu(Offload::Stream));
    assert!(none.host > w.dit.total(), "{none:?}");
    assert_eq!(blocks.host, none.host);
    assert!(stream.host < none.host / 8, "{stream:?} vs {none:?}");
    // On a GPU, `blocks` moves the blocks to the host and keeps the rest on the device.
    let gpu = estimate(&w, &c.dit, &s, gpu(Offload::Blocks));
    assert!(
        gpu.device < none.host / 8 && gpu.host >= w.dit.blocks,
        "{gpu:?}"
    );
}

#[test]
fn a_job_that_does_not_fit_names_the_mode_that_would() {
    let c = Contract::new(ModelSize::FourteenB);
    let w = WeightBytes::for_contract(&c, DType::F32, false);
    let s = shape(64, 64, 17);
    let stream = estimate(&w, &c.dit, &s, cpu(Offload::Stream));
    let budget = stream.host + (1 << 20);
    let e = check(&w, &c.dit, &s, cpu(Offload::None), Some(budget)).unwrap_err();
    assert!(e.contains("run with --offload stream"), "{e}");
    assert!(e.contains("--offload none"), "{e}");
    let ok = check(&w, &c.dit, &s, cpu(Offload::Stream), Some(budget)).unwrap();
    assert_eq!(ok, stream);
    let e = check(&w, &c.dit, &s, cpu(Offload::Stream), Some(1 << 20)).unwrap_err();
    assert!(e.contains("no offload mode fits"), "{e}");
}

#[test]
fn more_pixels_and_frames_need_more_memory() {
    let c = Contract::new(ModelSize::FourteenB);
    let w = WeightBytes::for_contract(&c, DType::BF16, false);
    let small = estimate(&w, &c.dit, &shape(64, 64, 17), cpu(Offload::Stream));
    let big = estimate(&w, &c.dit, &shape(512, 512, 81), cpu(Offload::Stream));
    assert!(big.activations > 10 * small.activations);
    assert_eq!(shape(64, 64, 17).tokens(&c.dit), (1 + 5) * 16 + 5 * 4);
}

#[test]
fn the_budget_counts_what_the_process_already_holds_and_keeps_under_the_limit() {
    // The estimates include weights already loaded, which the kernel no longer counts as
    // available: they belong in the budget.
    let g = 1u64 << 30;
    assert_eq!(budget(Some(10 * g), 6 * g, None), Some(16 * g));
    assert_eq!(budget(Some(10 * g), 6 * g, Some(12 * g)), Some(12 * g));
    assert_eq!(budget(None, 6 * g, Some(12 * g)), Some(12 * g));
    assert_eq!(budget(None, 0, None), None);
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_bytes("10GiB"), Ok(10 << 30));
    assert_eq!(parse_bytes("512M"), Ok(512 << 20));
    assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert!(parse_bytes("ten").is_err());
    assert!(parse_bytes("3 parsecs")
        .unwrap_err()
        .contains("unknown unit"));
}
