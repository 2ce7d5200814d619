//! `op-parity`: runs one prompt through llama.cpp with an eval callback and, at every node of the
//! first layers, recomputes the node from *llama.cpp's own inputs* with ingot's kernels and
//! ggml-exact helpers, reporting bitwise mismatches per node. Localizes which operation makes
//! ingot's forward pass diverge from llama.cpp's.

use std::ffi::{c_void, CStr, CString};

use half::f16;
use ingot_kernels::{Kernels, QuantType};
use ingot_runtime::model::ops;
use llama_cpp_sys_2 as sys;

struct State {
    k: Kernels,
    ops: ops::Ops,
    max_layer: i32,
    lines: Vec<String>,
    /// Copies of observed node outputs: ggml may later compute another node in place over them.
    saved: std::collections::HashMap<usize, Vec<u8>>,
    /// Every weight's bytes as the model file holds them, by name: ggml repacks some (Q4_0, Q4_K)
    /// into interleaved layouts at load, so `src0->data` is not the file's row-major blocks.
    weights: std::collections::HashMap<String, Vec<u8>>,
}

fn name(t: &sys::ggml_tensor) -> String {
    // SAFETY: ggml names are NUL-terminated within their 64 bytes.
    unsafe { CStr::from_ptr(t.name.as_ptr()) }.to_string_lossy().into_owned()
}

fn layer_of(n: &str) -> Option<i32> {
    n.rsplit('-').next()?.parse().ok()
}

/// f32 element at (i0, i1, i2) of a tensor with byte strides nb.
///
/// # Safety
/// Indices in range of an F32 tensor in host memory.
unsafe fn at(t: &sys::ggml_tensor, i0: i64, i1: i64, i2: i64) -> f32 {
    let off = i0 as usize * t.nb[0] + i1 as usize * t.nb[1] + i2 as usize * t.nb[2];
    // SAFETY: forwarded from the caller.
    unsafe { *(t.data as *const u8).add(off).cast::<f32>() }
}

unsafe extern "C" fn cb(t: *mut sys::ggml_tensor, ask: bool, ud: *mut c_void) -> bool {
    // SAFETY: ggml passes a valid tensor and our user data.
    let (t, st) = unsafe { (&*t, &mut *(ud as *mut State)) };
    let nm = name(t);
    if ask {
        return layer_of(&nm).is_some_and(|l| l <= st.max_layer) || nm == "result_norm" || nm == "result_output";
    }
    if t.type_ != sys::GGML_TYPE_F32 {
        return true;
    }
    let (mut n, mut bad, mut maxd) = (0usize, 0usize, 0f32);
    let mut cmp = |ours: f32, theirs: f32| {
        n += 1;
        if ours.to_bits() != theirs.to_bits() {
            bad += 1;
            maxd = maxd.max((ours - theirs).abs());
        }
    };
    // SAFETY (whole block): src tensors of a computed node live in host memory with the shapes
    // and strides ggml records; indices stay inside ne.
    unsafe {
        let fix = |p: *mut sys::ggml_tensor| -> Option<sys::ggml_tensor> {
            let mut c = *p.as_ref()?;
            if let Some(b) = st.saved.get(&(p as usize)) {
                c.data = b.as_ptr() as *mut c_void;
            } else if let Some(b) = st.saved.get(&(c.view_src as usize)) {
                c.data = b.as_ptr().add(c.view_offs) as *mut c_void;
            }
            Some(c)
        };
        let (c0, c1) = (fix(t.src[0]), fix(t.src[1]));
        let s0 = c0.as_ref();
        let s1 = c1.as_ref();
        match t.op {
            sys::GGML_OP_RMS_NORM => {
                let x = s0.unwrap();
                let eps = f32::from_bits(t.op_params[0] as u32);
                for i2 in 0..t.ne[2] {
                    for i1 in 0..t.ne[1] {
                        let mut sum = 0f64;
                        for i0 in 0..t.ne[0] {
                            let v = at(x, i0, i1, i2);
                            sum += f64::from(v * v);
                        }
                        let mean = (sum / t.ne[0] as f64) as f32;
                        let scale = 1.0 / (mean + eps).sqrt();
                        for i0 in 0..t.ne[0] {
                            cmp(at(x, i0, i1, i2) * scale, at(t, i0, i1, i2));
                        }
                    }
                }
            }
            sys::GGML_OP_ROPE => {
                let x = s0.unwrap();
                let pos = s1.unwrap().data as *const i32;
                let n_dims = t.op_params[1] as usize;
                let base = f32::from_bits(t.op_params[5] as u32);
                let fscale = f32::from_bits(t.op_params[6] as u32);
                let mut cache = vec![0f32; n_dims];
                let mut head = vec![0f32; t.ne[0] as usize];
                for i2 in 0..t.ne[2] {
                    ops::rope_cache(&mut cache, *pos.add(i2 as usize) as usize, base, fscale, n_dims);
                    for i1 in 0..t.ne[1] {
                        for i0 in 0..t.ne[0] {
                            head[i0 as usize] = at(x, i0, i1, i2);
                        }
                        ops::rope(&mut head[..n_dims], &cache);
                        for i0 in 0..t.ne[0] {
                            cmp(head[i0 as usize], at(t, i0, i1, i2));
                        }
                    }
                }
            }
            sys::GGML_OP_SOFT_MAX => {
                let x = s0.unwrap();
                let mask = s1;
                let scale = f32::from_bits(t.op_params[0] as u32);
                let mut w = vec![0f32; t.ne[0] as usize];
                for i2 in 0..t.ne[2] {
                    for i1 in 0..t.ne[1] {
                        for i0 in 0..t.ne[0] {
                            let m = mask.map_or(0.0, |m| {
                                if m.type_ == sys::GGML_TYPE_F16 {
                                    let off = i0 as usize * m.nb[0] + i1 as usize * m.nb[1];
                                    f16::from_bits(*(m.data as *const u8).add(off).cast::<u16>()).to_f32()
                                } else {
                                    at(m, i0, i1, 0)
                                }
                            });
                            w[i0 as usize] = at(x, i0, i1, i2) * scale + m;
                        }
                        let max = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let sum = ops::soft_max(&mut w, max);
                        let inv = (1.0 / sum) as f32;
                        for i0 in 0..t.ne[0] {
                            cmp(w[i0 as usize] * inv, at(t, i0, i1, i2));
                        }
                    }
                }
            }
            sys::GGML_OP_GLU if t.op_params[0] == sys::GGML_GLU_OP_SWIGLU as i32 => {
                let (a, b) = (s0.unwrap(), s1.unwrap());
                let mut g = vec![0f32; t.ne[0] as usize];
                let mut u = vec![0f32; t.ne[0] as usize];
                for i1 in 0..t.ne[1] {
                    for i0 in 0..t.ne[0] {
                        g[i0 as usize] = at(a, i0, i1, 0);
                        u[i0 as usize] = at(b, i0, i1, 0);
                    }
                    ops::swiglu(&mut g, &u);
                    for i0 in 0..t.ne[0] {
                        cmp(g[i0 as usize], at(t, i0, i1, 0));
                    }
                }
            }
            sys::GGML_OP_MUL_MAT => {
                let (w, x) = (s0.unwrap(), s1.unwrap());
                let k = w.ne[0] as usize;
                let r2 = x.ne[2] / w.ne[2];
                let n_tok = x.ne[1];
                if w.type_ == sys::GGML_TYPE_F16 {
                    let sgemm = n_tok >= 2 && w.ne[1] % 4 == 0;
                    let mut a = vec![f16::ZERO; k];
                    let mut b = vec![f16::ZERO; k];
                    for i2 in 0..t.ne[2] {
                        for i1 in 0..t.ne[1] {
                            for i0 in 0..k as i64 {
                                b[i0 as usize] = f16::from_f32(at(x, i0, i1, i2));
                            }
                            for r in 0..t.ne[0] {
                                let row = (w.data as *const u8).add(r as usize * w.nb[1] + (i2 / r2) as usize * w.nb[2]) as *const f16;
                                a.copy_from_slice(std::slice::from_raw_parts(row, k));
                                let v = if sgemm { st.ops.dot_f16_sgemm(&a, &b) } else { st.ops.dot_f16_ggml(&a, &b, k) };
                                cmp(v, at(t, r, i1, i2));
                            }
                        }
                    }
                } else {
                    let wt = match w.type_ {
                        sys::GGML_TYPE_Q4_1 => QuantType::Q4_1,
                        sys::GGML_TYPE_Q8_0 => QuantType::Q8_0,
                        sys::GGML_TYPE_Q4_0 => QuantType::Q4_0,
                        // K-quants (Q8_K activations): ingot's ids are ggml's.
                        other => match QuantType::from_ggml_id(other as u32) {
                            Some(q) if q.is_k_quant() => q,
                            _ => return true,
                        },
                    };
                    let at_ = wt.info().vec_dot_type;
                    let rb = wt.row_bytes(k).unwrap();
                    let arb = at_.row_bytes(k).unwrap();
                    let file_w = st.weights.get(&name(w)).filter(|_| wt.is_k_quant());
                    // All tokens' activations, then one `matmul` per weight row over all of them:
                    // the K-quant order depends on the token count as ggml's does (tiled matmul
                    // from 8 tokens on x86), which a per-token `vec_dot` would not show.
                    let nt = t.ne[1] as usize;
                    let rows = t.ne[0] as usize;
                    let mut xs = vec![0f32; k * nt];
                    for i1 in 0..t.ne[1] {
                        for i0 in 0..k as i64 {
                            xs[i1 as usize * k + i0 as usize] = at(x, i0, i1, 0);
                        }
                    }
                    // As the runtime quantizes them: token by token, except that a product llama.cpp
                    // runs with its repacked gemm (Q4_K, and Q2_K on AVX-512, with rows % 8 == 0)
                    // quantizes whole groups of 4 tokens with `ggml_quantize_mat_q8_K_4x8`.
                    let mut act = vec![0u8; arb * nt];
                    st.k.quantize_batch(wt, rows, &xs, k, &mut act, arb);
                    let mut out = vec![0f32; nt];
                    for r in 0..t.ne[0] {
                        let row = match file_w {
                            Some(b) => &b[r as usize * rb..][..rb],
                            None => std::slice::from_raw_parts((w.data as *const u8).add(r as usize * w.nb[1]), rb),
                        };
                        // One row of the whole matrix: its order depends on the matrix's row count.
                        st.k.matmul_part(wt, rows, &mut out, row, 1, &act, arb, nt, k);
                        for i1 in 0..t.ne[1] {
                            cmp(out[i1 as usize], at(t, r, i1, 0));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let bytes = t.ne[3] as usize * t.nb[3];
    // SAFETY: a computed F32 node's data holds ne[3] * nb[3] bytes.
    st.saved.insert(t as *const _ as usize, unsafe { std::slice::from_raw_parts(t.data as *const u8, bytes) }.to_vec());
    if n > 0 {
        st.lines.push(format!("{nm:<20} op {:>3} ne {:?}: {bad}/{n} differ, max |d| {maxd:.3e}", t.op, t.ne));
    }
    true
}


pub fn cmd_op_parity(model: &str, fixture: &str, case: usize, layers: i32, decode: bool) -> Result<(), Box<dyn std::error::Error>> {
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture)?)?;
    let c = &fx["cases"][case];
    let mut ids: Vec<i32> = c["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i32).collect();
    let k = Kernels::best();
    let file = ingot_runtime::gguf::GgufFile::open(model)?;
    let weights = file.parse()?.tensors().iter().map(|t| (t.name.to_string(), t.data.to_vec())).collect();
    let mut st = State { k, ops: ops::Ops::new(&k), max_layer: layers, lines: Vec::new(), saved: Default::default(), weights };
    let path = CString::new(model)?;
    // SAFETY: plain llama.cpp C API use; the model and context outlive the decode calls, the
    // callback's user data (st) outlives the context.
    unsafe {
        let m = sys::llama_model_load_from_file(path.as_ptr(), sys::llama_model_default_params());
        let mut p = sys::llama_context_default_params();
        p.n_ctx = 512;
        p.n_batch = 512;
        p.n_ubatch = 512;
        p.n_threads = 1;
        p.n_threads_batch = 1;
        p.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
        p.cb_eval = Some(cb);
        p.cb_eval_user_data = (&mut st as *mut State).cast();
        let ctx = sys::llama_init_from_model(m, p);
        let mut one = [c["greedy"][0]["token"].as_i64().unwrap() as i32];
        let rc = sys::llama_decode(ctx, sys::llama_batch_get_one(ids.as_mut_ptr(), ids.len() as i32));
        println!("== prompt '{}' ({} tokens) rc {rc}", c["name"], ids.len());
        for l in st.lines.drain(..) {
            println!("{l}");
        }
        if decode {
            let rc = sys::llama_decode(ctx, sys::llama_batch_get_one(one.as_mut_ptr(), 1));
            println!("== one decode step rc {rc}");
            for l in st.lines.drain(..) {
                println!("{l}");
            }
        }
        sys::llama_free(ctx);
        sys::llama_model_free(m);
    }
    Ok(())
}
