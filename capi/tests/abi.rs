//! ABI pin: the layout of every public struct (size, alignment, each field's offset), every status
//! code and version constant, and the list of exported functions are written in `capi/abi/*.txt`,
//! committed. This test fails when the Rust side drifts from them; capi/scripts/test-c.sh checks the
//! same files against the C compiler's view of `include/ingot.h` (tests/layout.c) and against the
//! symbols the static library exports (`nm`). Changing or removing a line is an ABI break (bump
//! INGOT_ABI_VERSION); only appending is compatible.
//! Regenerate after an intended change: `INGOT_BLESS=1 cargo test --release -p ingot-capi --test abi`.

use ingot::*;
use std::fmt::Write;
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;

fn check(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("abi")
        .join(name);
    if std::env::var_os("INGOT_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "the ABI differs from capi/abi/{name} (an ABI break unless only lines were appended):\n\
         --- committed\n{want}--- now\n{got}"
    );
}

macro_rules! layout {
    ($out:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        writeln!($out, "{} size {} align {}", stringify!($ty), size_of::<$ty>(), align_of::<$ty>()).unwrap();
        $( writeln!($out, "{}.{} {}", stringify!($ty), stringify!($field), offset_of!($ty, $field)).unwrap(); )*
    }};
}

#[test]
fn struct_layouts_and_constants_are_pinned() {
    let mut s = String::new();
    layout!(
        s,
        ingot_model_info {
            file_bytes,
            weight_bytes,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            bos,
            eos,
            has_chat_template,
        }
    );
    layout!(
        s,
        ingot_session_params {
            n_ctx,
            n_batch,
            n_threads,
            device
        }
    );
    layout!(
        s,
        ingot_sampler_params {
            seed,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            penalty_last_n,
        }
    );
    layout!(s, ingot_chat_message { role, content });
    use ingot_status::*;
    for (name, v) in [
        ("INGOT_OK", INGOT_OK),
        ("INGOT_ERR_NULL", INGOT_ERR_NULL),
        ("INGOT_ERR_INVALID", INGOT_ERR_INVALID),
        ("INGOT_ERR_BUFFER_TOO_SMALL", INGOT_ERR_BUFFER_TOO_SMALL),
        ("INGOT_ERR_IO", INGOT_ERR_IO),
        ("INGOT_ERR_MODEL", INGOT_ERR_MODEL),
        ("INGOT_ERR_CONTEXT_FULL", INGOT_ERR_CONTEXT_FULL),
        ("INGOT_ERR_TEMPLATE", INGOT_ERR_TEMPLATE),
        ("INGOT_ERR_STATE", INGOT_ERR_STATE),
        ("INGOT_ERR_INTERNAL", INGOT_ERR_INTERNAL),
    ] {
        writeln!(s, "{name} {}", v as i32).unwrap();
    }
    writeln!(s, "INGOT_ABI_VERSION {INGOT_ABI_VERSION}").unwrap();
    writeln!(s, "INGOT_DEVICE_CPU {INGOT_DEVICE_CPU}").unwrap();
    writeln!(s, "INGOT_DEVICE_CUDA {INGOT_DEVICE_CUDA}").unwrap();
    check(&format!("layout-{}bit.txt", usize::BITS), &s);
}

/// The functions `include/ingot.h` declares, in order: every line `<type> ingot_x(` at column 0.
fn header_functions() -> Vec<String> {
    let h =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/ingot.h"))
            .unwrap();
    h.lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('/') && !l.starts_with('#'))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            (name.starts_with("ingot_") && l.contains('(') && !l.starts_with("typedef"))
                .then(|| name.to_string())
        })
        .collect()
}

#[test]
fn exported_functions_are_pinned() {
    let mut names = header_functions();
    assert!(names.len() > 20, "parsed {names:?}");
    names.sort();
    check("symbols.txt", &(names.join("\n") + "\n"));
}
