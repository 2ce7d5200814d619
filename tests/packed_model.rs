//! Models whose weights the kernels repack at load (see `ingot_kernels::packed`):
//! the packed forward pass agrees with the file's own row-major path within rounding, keeps its
//! greedy choices, gives the same bits for any thread count, and `INGOT_REPACK=0`-style loading
//! (`Model::from_gguf_unpacked`) repacks nothing. On a CPU whose kernels do not repack, the tests
//! check that nothing was packed and compare the (identical) paths.

mod common;

use common::{tiny_model, Tiny};
use ingot_kernels::{Kernels, QuantType};
use ingot_runtime::gguf::Gguf;
use ingot_runtime::model::{Model, Repack, Session, SessionParams};

fn tiny(weight_type: QuantType) -> Vec<u8> {
    tiny_model(&Tiny {
        n_embd: 128,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 256,
        n_layer: 2,
        weight_type,
    })
    .to_bytes()
}

fn q4_0_model() -> Vec<u8> {
    tiny(QuantType::Q4_0)
}

/// Every token's logits over a prompt in several batches, then 6 greedy decode steps' logits.
fn run(model: &Model<'_>, threads: usize) -> (Vec<f32>, Vec<u32>) {
    let mut s = Session::new(
        model,
        SessionParams {
            n_ctx: 64,
            n_batch: 7,
            n_threads: threads,
            ..Default::default()
        },
    )
    .unwrap();
    let ids: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 256).collect();
    let mut logits = Vec::new();
    s.eval_all(&ids, |_, l| logits.extend_from_slice(l))
        .unwrap();
    let mut greedy = Vec::new();
    let mut last = logits[logits.len() - model.config.n_vocab..].to_vec();
    for _ in 0..6 {
        let next = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap() as u32;
        greedy.push(next);
        last = s.decode(next).unwrap().to_vec();
        logits.extend_from_slice(&last);
    }
    (logits, greedy)
}

#[test]
fn packed_forward_agrees_with_the_row_major_path() {
    let bytes = q4_0_model();
    let packed = Model::from_gguf(Gguf::parse(&bytes).unwrap()).unwrap();
    let plain = Model::from_gguf_unpacked(Gguf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(plain.packed_bytes(), 0);
    if Kernels::best().packs(QuantType::Q4_0) {
        // Every layer matrix and the tied output are Q4_0 with rows a multiple of 16.
        assert!(packed.packed_bytes() > 0);
        assert!(packed.weights.layers.iter().all(|l| l.wq.packed.is_some()));
    } else {
        eprintln!("{}: no packed path here", Kernels::best().isa());
        assert_eq!(packed.packed_bytes(), 0);
    }
    let (a, ga) = run(&packed, 1);
    let (b, gb) = run(&plain, 1);
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("max |packed - row-major| = {worst:e} (max |logit| {scale})");
    assert!(worst <= 1e-4 * scale.max(1.0), "differ by {worst}");
    assert_eq!(ga, gb, "greedy tokens");
}

#[test]
fn packed_forward_is_identical_at_1_2_and_3_threads() {
    let bytes = q4_0_model();
    let model = Model::from_gguf(Gguf::parse(&bytes).unwrap()).unwrap();
    let (want, _) = run(&model, 1);
    for threads in [2, 3] {
        let (got, _) = run(&model, threads);
        let first = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(first, None, "{threads} threads differ at logit {first:?}");
    }
}

/// Q8_0, Q4_1, Q5_0 and Q5_1 are packed (where the kernels pack them) in the row-major path's
/// lane order (`Kernels::packed_order`): the packed model computes the row-major model's logits
/// bit for bit, at any thread count.
#[test]
fn packed_lane_order_models_equal_the_row_major_model_bitwise() {
    for ty in [
        QuantType::Q8_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
    ] {
        let bytes = tiny(ty);
        let packed = Model::from_gguf_with(Gguf::parse(&bytes).unwrap(), Repack::Exact).unwrap();
        let rows = Model::from_gguf_with(Gguf::parse(&bytes).unwrap(), Repack::None).unwrap();
        assert_eq!(rows.packed_bytes(), 0);
        let k = Kernels::best();
        if !k.packs(ty) {
            assert_eq!(packed.packed_bytes(), 0);
            println!("{ty}: skipped, the {} kernels do not pack it", k.isa());
            continue;
        }
        // Layer matrices (the tiny vocabulary, 260, is not whole 16-row groups: its output
        // projection stays row-major).
        assert!(packed.packed_bytes() > 0);
        assert!(packed
            .weights
            .layers
            .iter()
            .all(|l| l.w_down.packed.is_some()));
        assert!(packed.weights.output.packed.is_none());
        let (a, ga) = run(&packed, 1);
        let (b, gb) = run(&rows, 1);
        assert_eq!(ga, gb);
        assert_eq!(a.len(), b.len());
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "packed and row-major {ty} logits differ ({})",
            k.isa()
        );
        let (t2, _) = run(&packed, 2);
        assert!(t2.iter().zip(&a).all(|(x, y)| x.to_bits() == y.to_bits()));
        println!("{ty}: packed = row-major bitwise on {}", k.isa());
    }
}

#[test]
fn repack_policy_selects_types() {
    assert!(!Repack::None.selects(QuantType::Q4_0));
    assert!(Repack::Exact.selects(QuantType::Q4_0));
    assert!(Repack::Exact.selects(QuantType::Q8_0));
    assert!(Repack::Exact.selects(QuantType::Q4_1));
    assert!(Repack::Exact.selects(QuantType::Q5_0));
    assert!(Repack::Exact.selects(QuantType::Q5_1));
    assert!(!Repack::Exact.selects(QuantType::Q4_K));
    assert_eq!(Repack::default(), Repack::Exact);
}

/// `Model::from_file` copies the norm weights out of the file and releases the whole mapping after
/// loading: the model reads the copies (equal to the file's bytes, elsewhere in memory) and computes
/// the same bits as the same file parsed from memory, for a type the kernels pack and one they do
/// not (whose weights then come back from the file as they are read).
#[test]
fn a_model_from_a_released_file_computes_the_same_bits() {
    use ingot_runtime::gguf::GgufFile;
    for ty in [QuantType::Q8_0, QuantType::F16] {
        let bytes = tiny(ty);
        let dir = std::env::temp_dir().join(format!("ingot-released-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{ty}.gguf"));
        std::fs::write(&path, &bytes).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let loaded = Model::from_file(&file).unwrap();
        let parsed = Model::from_gguf(Gguf::parse(&bytes).unwrap()).unwrap();
        let w = &loaded.weights;
        for v in w
            .layers
            .iter()
            .flat_map(|l| [&l.attn_norm, &l.ffn_norm])
            .chain([&w.output_norm])
        {
            let copy = loaded.norm_bytes(v);
            assert_eq!(copy, v.le_bytes(), "{ty} {}", v.name);
            assert_ne!(
                copy.as_ptr(),
                v.le_bytes().as_ptr(),
                "{ty} {}: not copied",
                v.name
            );
        }
        let (a, ga) = run(&loaded, 2);
        let (b, gb) = run(&parsed, 2);
        assert_eq!(ga, gb);
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{ty}"
        );
        drop(loaded);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
