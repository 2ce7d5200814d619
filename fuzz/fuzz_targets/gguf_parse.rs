//! Parses arbitrary bytes as GGUF. Whatever parses must be internally consistent: every metadata value
//! (arrays element by element, strings byte by byte) and every tensor's data view is read in full, so
//! a view that points outside the input or an array that was not really validated shows up as a panic
//! or an out-of-bounds read.
#![no_main]

use ingot_runtime::gguf::{Gguf, Value, MAX_DIMS};
use libfuzzer_sys::fuzz_target;

fn touch_value(v: &Value<'_>, acc: &mut u64) {
    match *v {
        Value::String(s) => {
            for b in s.bytes() {
                *acc = acc.wrapping_add(u64::from(b));
            }
        }
        Value::Array(a) => {
            let mut n = 0usize;
            for e in a.iter() {
                assert!(
                    !matches!(e, Value::Array(_)),
                    "nested array survived parsing"
                );
                assert_eq!(e.value_type(), a.elem, "array element of the wrong type");
                touch_value(&e, acc);
                n += 1;
            }
            assert_eq!(n, a.len, "array iterated to a different length");
            if let Some(strings) = a.strings() {
                for s in strings {
                    *acc = acc.wrapping_add(s.len() as u64);
                }
            }
        }
        _ => {
            *acc = acc.wrapping_add(v.as_u64().unwrap_or(0));
            *acc = acc.wrapping_add(v.as_f64().map_or(0, |f| f.to_bits()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    let mut acc = 0u64;

    assert!(g.version == 2 || g.version == 3);
    assert!(g.alignment.is_power_of_two());
    assert_eq!(g.data_offset % g.alignment, 0);

    for (k, v) in g.metadata() {
        acc = acc.wrapping_add(k.len() as u64);
        touch_value(v, &mut acc);
        // Typed getters must agree with the raw value and never panic.
        // Keys are unique, so `get` finds this very value (NaN floats compare by their Debug form).
        let got = g.get(k).expect("a listed key must be found");
        assert!(got == *v || format!("{got:?}") == format!("{v:?}"), "get({k:?}) differs");
        let _ = g.get_str(k);
        let _ = g.get_u64(k);
        let _ = g.get_f32(k);
        let _ = g.get_bool(k);
        let _ = g.get_array(k);
    }

    let base = data.as_ptr() as usize;
    let mut total = 0u64;
    for t in g.tensors() {
        assert!(t.n_dims >= 1 && t.n_dims <= MAX_DIMS);
        assert_eq!(t.shape().len(), t.n_dims);
        assert!(t.dims.iter().all(|&d| d >= 1));
        assert_eq!(t.n_elements(), t.dims[0] * t.n_rows());
        // The view lies inside the input, at data_offset + offset, and has the size of its shape.
        let start = t.data.as_ptr() as usize - base;
        assert_eq!(start as u64, g.data_offset + t.offset, "tensor `{}` view misplaced", t.name);
        assert!(start + t.data.len() <= data.len());
        let row = t.ty.row_bytes(t.dims[0] as usize).expect("row length checked at parse");
        assert_eq!(t.data.len() as u64, row as u64 * t.n_rows(), "tensor `{}` size", t.name);
        assert!(g.tensor(t.name).is_some());
        // Read every byte of the view.
        acc = t.data.iter().fold(acc, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
        total += t.data.len() as u64;
    }
    assert_eq!(g.tensor_bytes(), total);
    std::hint::black_box(acc);
});
