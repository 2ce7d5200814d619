//! `ingot plan`: the exact memory a session needs, in bytes, before anything is allocated: the
//! weights (mapped from the file; the matrices the kernels repack are copied once, same size), the
//! KV cache (f16, or f32 with `--kv-type f32`), the scratch buffers and the session handle.
//! `kv_cache + scratch` is what `Session::new_in_arena` needs; the session total, with the handle
//! that `ingot_session_new_in_arena` places in front of them, is what `ingot_session_arena_size`
//! returns.

use super::{load_model, open};
use crate::PlanArgs;
use anyhow::Result;
use ingot_runtime::model::{kv_cache_bytes, Session, SessionParams, SESSION_HANDLE_BYTES};

pub fn run(a: &PlanArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let params = SessionParams {
        n_ctx: a.ctx,
        n_batch: a.batch,
        n_threads: a.threads,
        kv_type: a.kv_type,
    };
    // Checks the sizes exactly as creating the session would.
    let buffers = Session::arena_bytes(&model, params)?;
    let session = buffers + SESSION_HANDLE_BYTES;
    let kv = kv_cache_bytes(&model, params);
    let weights = model.weight_bytes();
    let file_bytes = file.bytes().len() as u64;
    let c = &model.config;
    println!("model:    {}", file.path());
    println!(
        "params:   ctx {} batch {} threads {} kv {}",
        a.ctx,
        a.batch.min(a.ctx),
        a.threads,
        a.kv_type
    );
    let packed = model.packed_bytes() as u64;
    if packed == 0 {
        println!("weights:  {weights} bytes (mapped, of a {file_bytes}-byte file; not copied)");
    } else {
        println!(
            "weights:  {weights} bytes (mapped, of a {file_bytes}-byte file; {packed} of them \
             repacked at load into heap memory for the kernels, their mapped pages released: \
             INGOT_REPACK=0 keeps every weight mapped)"
        );
    }
    println!(
        "kv_cache: {kv} bytes ({} K and V: {} layers x {} positions x {} x 2)",
        a.kv_type,
        c.n_layer,
        a.ctx,
        c.kv_dim()
    );
    println!("scratch:  {} bytes", buffers - kv);
    println!(
        "handle:   {SESSION_HANDLE_BYTES} bytes (the session struct, at the front of a C arena)"
    );
    println!("session:  {session} bytes (kv_cache + scratch + handle = ingot_session_arena_size)");
    println!("total:    {} bytes", weights + session as u64);
    Ok(())
}
