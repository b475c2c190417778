//! The offload modes change where blocks live, never the numbers: the DiT, umT5 and CLIP give
//! bit-identical outputs with blocks resident (`none`), host-resident (`blocks`) and read from
//! the checkpoint at every use (`stream`), on the fixture weights read through the loaders.

use candle_core::{DType, Device, IndexOp};
use scail_model::clip::ClipVision;
use scail_model::dit::{Dit, DitConfig};
use scail_model::fixtures;
use scail_model::offload::Offload;
use scail_model::t5::T5Encoder;
use scail_model::weights::Checkpoint;

fn vb(file: &std::path::Path) -> candle_nn::VarBuilder<'static> {
    Checkpoint::open(file)
        .expect("fixture weights")
        .var_builder(DType::F32, &Device::Cpu)
}

#[test]
fn dit_forward_is_identical_in_every_offload_mode() {
    let m = fixtures::manifest();
    let cfg = DitConfig::from_manifest(&m).unwrap();
    let file = fixtures::files_of_kind(&m, "dit").remove(0);
    let weights = fixtures::weights_of(&m, &file);
    let d = fixtures::load(&file);
    let inputs = fixtures::dit_inputs(&d);
    let mut outs = Vec::new();
    for mode in Offload::ALL {
        let model = Dit::load_offloaded(vb(&weights), &cfg, mode).unwrap();
        assert_eq!(model.offload(), mode);
        // Twice: a streamed block is read again at each forward.
        let a = model.forward(&inputs).unwrap();
        let b = model.forward(&inputs).unwrap();
        assert_eq!(
            fixtures::max_abs_diff(&a, &b),
            0.0,
            "{mode}: second forward"
        );
        fixtures::assert_close(&m, &file, "out.velocity", &a, &d["out.velocity"]);
        outs.push(a);
    }
    for (mode, o) in Offload::ALL.iter().zip(&outs).skip(1) {
        assert_eq!(fixtures::max_abs_diff(o, &outs[0]), 0.0, "{mode} vs none");
    }
}

#[test]
fn t5_and_clip_are_identical_in_every_offload_mode() {
    let m = fixtures::manifest();
    let t5_file = fixtures::only_file_of_kind(&m, "t5");
    let t = fixtures::load(&t5_file);
    let ids = t["in.ids"].to_dtype(DType::U32).unwrap();
    let n = m["config"]["t5"]["seq_lens"][0].as_u64().unwrap() as usize;
    let row: Vec<u32> = ids.i((0, ..n)).unwrap().to_vec1().unwrap();
    let clip_file = fixtures::only_file_of_kind(&m, "clip");
    let c = fixtures::load(&clip_file);
    let t5_weights = fixtures::weights_of(&m, &t5_file);
    let stored = Checkpoint::open(&t5_weights)
        .unwrap()
        .meta("token_embedding.weight")
        .unwrap()
        .dtype;
    let (mut contexts, mut tokens) = (Vec::new(), Vec::new());
    for mode in Offload::ALL {
        let enc = T5Encoder::new_offloaded(&fixtures::t5_config(&m), vb(&t5_weights), mode, stored)
            .unwrap();
        let ctx = enc.encode(&row).unwrap();
        fixtures::assert_close(&m, &t5_file, "out.context_0", &ctx, &t["out.context_0"]);
        contexts.push(ctx);
        let clip_weights = fixtures::weights_of(&m, &clip_file);
        let clip =
            ClipVision::new_offloaded(&fixtures::clip_config(&m), vb(&clip_weights), mode).unwrap();
        let tok = clip.forward(&c["out.preprocessed"]).unwrap();
        fixtures::assert_close(&m, &clip_file, "out.tokens", &tok, &c["out.tokens"]);
        tokens.push(tok);
    }
    for i in 1..Offload::ALL.len() {
        let mode = Offload::ALL[i];
        assert_eq!(
            fixtures::max_abs_diff(&contexts[i], &contexts[0]),
            0.0,
            "umT5 {mode}"
        );
        assert_eq!(
            fixtures::max_abs_diff(&tokens[i], &tokens[0]),
            0.0,
            "CLIP {mode}"
        );
    }
}
