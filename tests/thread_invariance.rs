//! The forward pass gives the same bits for any thread count: matrix products are split by rows,
//! attention by (token, head) and per-token work by token, and every output element is computed by
//! the same code whichever thread takes it. Checked on `Kernels::best()` (`INGOT_ISA` picks another
//! path): prefill in several batches (`eval_all` logits of every token), then greedy decode steps;
//! at two threads in every [`AttentionPlace`] (where a decode step computes attention).

mod common;

use ingot_kernels::{Isa, Kernels};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{AttentionPlace, Model, Session, SessionParams};

fn run(model: &Model<'_>, threads: usize, place: AttentionPlace, ids: &[u32]) -> Vec<u32> {
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx: 320,
            n_batch: 24,
            n_threads: threads,
            ..Default::default()
        },
    )
    .unwrap();
    session.set_attention_place(place);
    let mut bits = Vec::new();
    session
        .eval_all(ids, |_, l| bits.extend(l.iter().map(|v| v.to_bits())))
        .unwrap();
    let mut logits = session.prefill(&ids[..1]).unwrap().to_vec();
    for _ in 0..6 {
        bits.extend(logits.iter().map(|v| v.to_bits()));
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        logits = session.decode(next).unwrap().to_vec();
    }
    bits
}

#[test]
fn logits_are_identical_at_1_2_and_3_threads() {
    let file = GgufFile::open(common::model_path()).unwrap();
    let model = Model::from_gguf(file.parse().unwrap()).unwrap();
    let ids = model.tokenizer.encode(
        "The quick brown fox jumps over the lazy dog. In 1905, Einstein published four papers \
         that changed physics: the photoelectric effect, Brownian motion, special relativity and",
        true,
        false,
    );
    assert!(ids.len() > 24, "the prompt must span several batches");
    let isa = Kernels::best().isa();
    println!("kernels: {isa} (of {:?})", Isa::ALL);
    let want = run(&model, 1, AttentionPlace::Auto, &ids);
    let places = [
        AttentionPlace::Auto,
        AttentionPlace::Shared,
        AttentionPlace::Caller,
    ];
    let runs = places
        .map(|p| (2, p))
        .into_iter()
        .chain([(3, AttentionPlace::Auto)]);
    for (threads, place) in runs {
        let got = run(&model, threads, place, &ids);
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(
            first, None,
            "{threads} threads ({place:?}) differ from 1 at logit {first:?}"
        );
        assert_eq!(got.len(), want.len());
    }
}
