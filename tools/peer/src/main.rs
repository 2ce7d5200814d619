//! ingot-peer: llama.cpp (through `llama-cpp-2`) as the reference implementation for ingot.
//!
//! Subcommands (see tools/peer/README.md):
//!   logits     --model M --out FILE.json [--threads N] [--steps 32] [--ctx 512] [--prompts FILE.jsonl]
//!   tokenize   --model M --in FILE.jsonl --out FILE.jsonl
//!   perplexity --model M -f TEXT [--ctx 512] [--chunks K] [--threads N] [--flash-attn off|on|auto]
//!   bench      --model M [--threads N] [--runs 5]
//!   sysinfo
//!   kernel-parity [--rows 200] [--seed 1]
//!   op-parity  --model M [--fixture testdata/peer/smollm2-q4_1.json] [--case 0] [--layers 1] [--decode 1]
//!   quantize-parity [--model M] [--out testdata/peer/quantize.json] [--seed 1]
//!   quantize-file --in M --out F --type Q8_0 [--allow-requantize 1] [--threads 0]
//!   gguf-diff  --a F1 --b F2
//!
//! Everything runs on the CPU backend. Flash attention is explicitly disabled unless asked otherwise,
//! the KV cache is llama.cpp's default (F16) and the model's own add-BOS flag is honoured everywhere.

mod kquants;
mod opcheck;
mod parity;
mod quant_inputs;
mod quantize;

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{BufRead, BufWriter, Write};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Instant;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const LLAMA_CPP_2_VERSION: &str = "0.1.160";
const LLAMA_CPP_SYS_2_VERSION: &str = "0.1.161";

// ---------------------------------------------------------------------------------------------
// small helpers

struct Args {
    cmd: String,
    kv: HashMap<String, String>,
}

impl Args {
    fn parse() -> Res<Args> {
        let mut it = std::env::args().skip(1);
        let cmd = it.next().ok_or("usage: ingot-peer <logits|tokenize|perplexity|bench|sysinfo> [options]")?;
        let mut kv = HashMap::new();
        while let Some(k) = it.next() {
            let key = k.trim_start_matches('-').to_string();
            if key.is_empty() || !k.starts_with('-') {
                return Err(format!("unexpected argument {k:?}").into());
            }
            let v = it.next().ok_or_else(|| format!("option {k} needs a value"))?;
            kv.insert(key, v);
        }
        Ok(Args { cmd, kv })
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.kv.get(k).map(String::as_str)
    }
    fn req(&self, k: &str) -> Res<&str> {
        self.get(k).ok_or_else(|| format!("missing --{k}").into())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Res<T> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.parse::<T>().map_err(|_| format!("bad value for --{k}: {v}").into()),
        }
    }
}

pub(crate) fn system_info() -> String {
    unsafe {
        let p = llama_cpp_sys_2::llama_print_system_info();
        CStr::from_ptr(p).to_string_lossy().trim().to_string()
    }
}

fn fa_policy(s: &str) -> Res<llama_cpp_sys_2::llama_flash_attn_type> {
    Ok(match s {
        "off" => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        "on" => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        "auto" => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        _ => return Err(format!("--flash-attn must be off|on|auto, got {s}").into()),
    })
}

fn load_model(backend: &LlamaBackend, path: &str) -> Res<LlamaModel> {
    let params = LlamaModelParams::default();
    Ok(LlamaModel::load_from_file(backend, PathBuf::from(path), &params)?)
}

struct CtxCfg {
    n_ctx: u32,
    n_batch: u32,
    threads: i32,
    flash_attn: String,
}

fn new_ctx<'a>(model: &'a LlamaModel, backend: &LlamaBackend, cfg: &CtxCfg) -> Res<LlamaContext<'a>> {
    let p = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cfg.n_ctx))
        .with_n_batch(cfg.n_batch)
        .with_n_ubatch(cfg.n_batch)
        .with_n_seq_max(1)
        .with_n_threads(cfg.threads)
        .with_n_threads_batch(cfg.threads)
        .with_type_k(KvCacheType::F16)
        .with_type_v(KvCacheType::F16)
        .with_flash_attention_policy(fa_policy(&cfg.flash_attn)?);
    Ok(model.new_context(backend, p)?)
}

/// Indices of the k largest logits, ties broken by the lower token id.
fn top_k(logits: &[f32], k: usize) -> Vec<(i32, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let cmp = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i as i32, logits[i])).collect()
}

/// llama.cpp's greedy sampler: first (lowest id) maximum.
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

fn topk_json(t: &[(i32, f32)]) -> Value {
    Value::Array(t.iter().map(|(i, l)| json!([i, l])).collect())
}

/// Pretty JSON, except that arrays holding only scalars or arrays of scalars stay on one line
/// (keeps the top-k fixtures small and diff-friendly).
fn to_json_compactish(v: &Value) -> String {
    fn flat(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.iter().all(|x| !x.is_object() && (!x.is_array() || x.as_array().unwrap().iter().all(|y| !y.is_object() && !y.is_array()))),
            _ => false,
        }
    }
    fn go(v: &Value, ind: usize, out: &mut String) {
        let pad = "  ".repeat(ind + 1);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str("{\n");
                for (i, (k, x)) in m.iter().enumerate() {
                    out.push_str(&pad);
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push_str(": ");
                    go(x, ind + 1, out);
                    out.push_str(if i + 1 < m.len() { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(ind));
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() && !flat(v) => {
                out.push_str("[\n");
                for (i, x) in a.iter().enumerate() {
                    out.push_str(&pad);
                    go(x, ind + 1, out);
                    out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(ind));
                out.push(']');
            }
            _ => out.push_str(&serde_json::to_string(v).unwrap()),
        }
    }
    let mut out = String::new();
    go(v, 0, &mut out);
    out.push('\n');
    out
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn tokenize(model: &LlamaModel, text: &str, parse_special: bool) -> Vec<LlamaToken> {
    // add_special = true: BOS/EOS exactly as the model's tokenizer.ggml.add_*_token flags say
    // (SmolLM2: neither), like llama.cpp's common_tokenize(ctx, text, true).
    model.vocab().tokenize(text.as_bytes(), true, parse_special)
}

fn ids(t: &[LlamaToken]) -> Vec<i32> {
    t.iter().map(|t| t.0).collect()
}

fn model_info(model: &LlamaModel, path: &str) -> Value {
    let meta = |k: &str| model.meta_val_str(k).ok();
    json!({
        "path": std::path::Path::new(path).file_name().map(|s| s.to_string_lossy().to_string()),
        "n_vocab": model.n_vocab(),
        "n_layer": model.n_layer(),
        "n_embd": model.n_embd(),
        "add_bos": model.vocab().should_add_bos(),
        "add_eos": model.vocab().should_add_eos(),
        "general.name": meta("general.name"),
        "general.file_type": meta("general.file_type"),
        "tokenizer.ggml.pre": meta("tokenizer.ggml.pre"),
    })
}

// ---------------------------------------------------------------------------------------------
// logits

const PROMPTS: &[(&str, &str, bool)] = &[
    (
        "english_prose",
        "The old lighthouse keeper climbed the spiral stairs every evening, carrying a lantern and a \
         battered notebook in which he recorded the weather, the ships that passed, and",
        false,
    ),
    (
        "chinese",
        "长城是中国古代的军事防御工程，它的历史可以追溯到春秋战国时期。今天，长城已经成为",
        false,
    ),
    (
        "code_python",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    a, b = 0, 1\n    for _ in range(n - 1):\n",
        false,
    ),
    (
        "chatml",
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nExplain in a few sentences why the sky is blue.<|im_end|>\n<|im_start|>assistant\n",
        true,
    ),
    (
        "english_numbers",
        "In 1969, Apollo 11 landed on the Moon. The mission lasted 8 days, 3 hours and 18 minutes, and the crew of 3",
        false,
    ),
];

fn cmd_logits(backend: &LlamaBackend, a: &Args) -> Res<()> {
    let model_path = a.req("model")?;
    let out = a.req("out")?;
    let threads: i32 = a.num("threads", 1)?;
    let steps: usize = a.num("steps", 32)?;
    let fa = a.get("flash-attn").unwrap_or("off").to_string();
    let n_ctx: u32 = a.num("ctx", 512)?;
    // --prompts FILE.jsonl: one {"name", "text", "parse_special"} per line instead of the built-in five
    // (models with a small vocabulary, e.g. ingot-trained character-level ones, cannot take those).
    let prompts: Vec<(String, String, bool)> = match a.get("prompts") {
        None => PROMPTS.iter().map(|(n, t, p)| (n.to_string(), t.to_string(), *p)).collect(),
        Some(path) => {
            let mut v = Vec::new();
            for line in std::fs::read_to_string(path)?.lines().filter(|l| !l.trim().is_empty()) {
                let j: Value = serde_json::from_str(line)?;
                let text = j["text"].as_str().ok_or("prompt line without text")?.to_string();
                let name = j["name"].as_str().unwrap_or("prompt").to_string();
                v.push((name, text, j["parse_special"].as_bool().unwrap_or(false)));
            }
            v
        }
    };
    let model = load_model(backend, model_path)?;
    let cfg = CtxCfg { n_ctx, n_batch: n_ctx, threads, flash_attn: fa.clone() };
    let mut ctx = new_ctx(&model, backend, &cfg)?;
    let eog: Vec<bool> = (0..model.n_vocab()).map(|i| model.vocab().is_eog(LlamaToken(i))).collect();

    let mut cases = Vec::new();
    for (name, text, parse_special) in &prompts {
        let prompt = tokenize(&model, text, *parse_special);
        assert!(prompt.len() + steps <= cfg.n_ctx as usize && prompt.len() <= cfg.n_batch as usize);
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(cfg.n_batch as usize, 1);
        for (i, t) in prompt.iter().enumerate() {
            batch.add(*t, i as i32, &[0], i + 1 == prompt.len())?;
        }
        ctx.decode(&mut batch)?;
        let last = ctx.get_logits_ith(prompt.len() as i32 - 1).to_vec();
        let prompt_top = top_k(&last, 40);

        let mut gen = Vec::new();
        let mut logits = last;
        let mut pos = prompt.len() as i32;
        for _ in 0..steps {
            let next = argmax(&logits);
            let t8 = top_k(&logits, 8);
            gen.push(json!({
                "token": next,
                "piece": String::from_utf8_lossy(&model.vocab().token_to_piece(LlamaToken(next as i32), true, None)),
                "margin": t8[0].1 - t8[1].1,
                "eog": eog[next],
                "top8": topk_json(&t8),
            }));
            batch.clear();
            batch.add(LlamaToken(next as i32), pos, &[0], true)?;
            pos += 1;
            ctx.decode(&mut batch)?;
            logits = ctx.get_logits_ith(0).to_vec();
        }
        let min_margin = gen.iter().map(|g| g["margin"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
        eprintln!("[logits] {name}: {} prompt tokens, top1 {} ({:.4}), min greedy margin {:.4}",
                  prompt.len(), prompt_top[0].0, prompt_top[0].1, min_margin);
        cases.push(json!({
            "name": name,
            "prompt": text,
            "parse_special": parse_special,
            "prompt_ids": ids(&prompt),
            "top40_last": topk_json(&prompt_top),
            "greedy": gen,
        }));
    }

    let doc = json!({
        "generator": "tools/peer (ingot-peer logits)",
        "llama_cpp_2": LLAMA_CPP_2_VERSION,
        "llama_cpp_sys_2": LLAMA_CPP_SYS_2_VERSION,
        "system_info": system_info(),
        "model": model_info(&model, model_path),
        "settings": {
            "n_ctx": cfg.n_ctx, "n_batch": cfg.n_batch, "n_ubatch": cfg.n_batch, "n_threads": threads,
            "kv_cache_type": "f16",
            "flash_attn": fa,
            "flash_attn_note": "explicitly set via llama_context_params.flash_attn_type (off = LLAMA_FLASH_ATTN_TYPE_DISABLED)",
            "add_special": "per model flags (add_bos = false for SmolLM2: no BOS)",
            "prompt_eval": "whole prompt in one llama_decode batch, logits requested for the last position only",
            "greedy": "argmax over raw logits (lowest id wins ties), one token per llama_decode, fed back at the next position",
            "topk_order": "logit descending, ties by lower id",
            "margin": "logit(top1) - logit(top2)",
        },
        "steps": steps,
        "cases": cases,
    });
    std::fs::write(out, to_json_compactish(&doc))?;
    eprintln!("wrote {out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// tokenize

fn cmd_tokenize(backend: &LlamaBackend, a: &Args) -> Res<()> {
    let model = load_model(backend, a.req("model")?)?;
    let input = std::fs::File::open(a.req("in")?)?;
    let mut out = BufWriter::new(std::fs::File::create(a.req("out")?)?);
    let mut n = 0;
    for line in std::io::BufReader::new(input).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)?;
        let text = v["text"].as_str().ok_or("line without text")?;
        let ps = v["parse_special"].as_bool().unwrap_or(false);
        let t = tokenize(&model, text, ps);
        serde_json::to_writer(&mut out, &json!({"text": text, "parse_special": ps, "ids": ids(&t)}))?;
        writeln!(out)?;
        n += 1;
    }
    eprintln!("tokenized {n} lines");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// perplexity: the method of llama.cpp's tools/perplexity/perplexity.cpp (perplexity(), ppl_stride = 0),
// one sequence per pass (n_seq = 1, n_batch = n_ctx).

fn cmd_perplexity(backend: &LlamaBackend, a: &Args) -> Res<()> {
    let model_path = a.req("model")?;
    let file = a.get("f").or(a.get("file")).ok_or("missing -f TEXT")?;
    let n_ctx: usize = a.num("ctx", 512)?;
    let chunks: i64 = a.num("chunks", -1)?;
    let threads: i32 = a.num("threads", 1)?;
    let n_batch: usize = a.num("batch", n_ctx)?;
    let fa = a.get("flash-attn").unwrap_or("off").to_string();
    if !(n_batch <= n_ctx && n_ctx % n_batch == 0) {
        return Err("--batch must divide --ctx".into());
    }
    let model = load_model(backend, model_path)?;
    let cfg = CtxCfg { n_ctx: n_ctx as u32, n_batch: n_batch as u32, threads, flash_attn: fa.clone() };
    let mut ctx = new_ctx(&model, backend, &cfg)?;
    let vocab = model.vocab();
    let add_bos = vocab.should_add_bos();
    assert!(!vocab.should_add_eos());
    let mut text = std::fs::read_to_string(file)?;
    let file_bytes = text.len();
    // common/arg.cpp `-f`: the file is the prompt, minus one trailing '\n'
    if text.ends_with('\n') {
        text.pop();
    }
    let tokens = tokenize(&model, &text, false); // common_tokenize(ctx, prompt, add_special=true), parse_special=false
    eprintln!("system_info: n_threads = {threads} | {}", system_info());
    if tokens.len() < 2 * n_ctx {
        return Err(format!("need at least {} tokens, file has {}", 2 * n_ctx, tokens.len()).into());
    }
    let n_chunk_max = tokens.len() / n_ctx;
    let n_chunk = if chunks < 0 { n_chunk_max } else { (chunks as usize).min(n_chunk_max) };
    let n_vocab = model.n_vocab() as usize;
    let first = n_ctx / 2;
    let num_batches = n_ctx.div_ceil(n_batch);
    eprintln!("perplexity: {} tokens; calculating perplexity over {n_chunk} chunks, n_ctx={n_ctx}, batch_size={n_batch}, n_seq=1",
              tokens.len());

    let mut nll = 0.0f64;
    let mut nll2 = 0.0f64;
    let mut count = 0usize;
    let mut per_chunk = Vec::new();
    let mut batch = LlamaBatch::new(n_batch, 1);
    for i in 0..n_chunk {
        let start = i * n_ctx;
        let end = start + n_ctx;
        let t0 = Instant::now();
        ctx.clear_kv_cache();
        let mut logits: Vec<f32> = Vec::with_capacity((n_ctx - first) * n_vocab);
        for j in 0..num_batches {
            let batch_start = start + j * n_batch;
            let batch_size = (end - batch_start).min(n_batch);
            batch.clear();
            let mut n_outputs = 0;
            for k in 0..batch_size {
                let mut tok = tokens[batch_start + k];
                if add_bos && j == 0 && k == 0 {
                    tok = vocab.bos();
                }
                let pos = j * n_batch + k;
                let out = pos >= first;
                n_outputs += out as usize;
                batch.add(tok, pos as i32, &[0], out)?;
            }
            ctx.decode(&mut batch)?;
            if n_outputs > 0 {
                for k in 0..batch_size {
                    if j * n_batch + k >= first {
                        logits.extend_from_slice(ctx.get_logits_ith(k as i32));
                    }
                }
            }
        }
        if i == 0 {
            eprintln!("perplexity: {:.2} seconds per pass", t0.elapsed().as_secs_f32());
        }
        // process_logits(): positions first .. n_ctx-2 predict tokens first+1 .. n_ctx-1
        let mut chunk_nll = 0.0f64;
        for r in 0..(n_ctx - 1 - first) {
            let row = &logits[r * n_vocab..(r + 1) * n_vocab];
            let tok = tokens[start + first + r + 1].0 as usize;
            // log_softmax() as in perplexity.cpp: float max, double sum of expf, double result
            let mut max_logit = row[0];
            for &v in &row[1..] {
                max_logit = max_logit.max(v);
            }
            let mut sum_exp = 0.0f64;
            for &v in row {
                sum_exp += (v - max_logit).exp() as f64;
            }
            let v = -((row[tok] - max_logit) as f64 - sum_exp.ln());
            nll += v;
            nll2 += v * v;
            chunk_nll += v;
        }
        count += n_ctx - first - 1;
        let running = (nll / count as f64).exp();
        per_chunk.push((running, (chunk_nll / (n_ctx - first - 1) as f64).exp()));
        print!("[{}]{:.4},", i + 1, running);
        std::io::stdout().flush()?;
    }
    println!();
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let unc = if var > 0.0 { (var / (count as f64 - 1.0)).sqrt() * ppl } else { f64::NAN };
    println!("Final estimate: PPL = {ppl:.4} +/- {unc:.5}");
    println!("tokens_total = {}, chunks = {n_chunk}, n_ctx = {n_ctx}, scored = {count}, mean_nll = {mean:.8}",
             tokens.len());
    for (i, (r, c)) in per_chunk.iter().enumerate() {
        println!("chunk {} running_ppl = {r:.6} chunk_ppl = {c:.6}", i + 1);
    }
    println!("flash_attn = {fa}, threads = {threads}");
    println!("system_info = {}", system_info());
    println!("PPL = {ppl:.6}");
    if let Some(path) = a.get("json") {
        // Merge this run into FILE (one entry per chunk count), so several runs share one fixture.
        let run = json!({
            "chunks": n_chunk,
            "tokens_scored": count,
            "scored_per_chunk": n_ctx - first - 1,
            "mean_nll": mean,
            "ppl": ppl,
            "ppl_uncertainty": unc,
            "running_ppl": per_chunk.iter().map(|p| p.0).collect::<Vec<_>>(),
            "chunk_ppl": per_chunk.iter().map(|p| p.1).collect::<Vec<_>>(),
        });
        let file_name = std::path::Path::new(file).file_name().unwrap().to_string_lossy().to_string();
        let mut doc: Value = std::fs::read_to_string(path).ok().and_then(|s| serde_json::from_str(&s).ok())
            .filter(|d: &Value| d["text_file"] == json!(file_name) && d["n_ctx"] == json!(n_ctx))
            .unwrap_or_else(|| json!({}));
        let mut runs: Vec<Value> = doc["runs"].as_array().cloned().unwrap_or_default();
        runs.retain(|r| r["chunks"] != json!(n_chunk));
        runs.push(run);
        runs.sort_by_key(|r| r["chunks"].as_u64());
        doc = json!({
            "generator": "tools/peer (ingot-peer perplexity), method of llama.cpp tools/perplexity/perplexity.cpp",
            "llama_cpp_2": LLAMA_CPP_2_VERSION,
            "llama_cpp_sys_2": LLAMA_CPP_SYS_2_VERSION,
            "system_info": system_info(),
            "model": model_info(&model, model_path),
            "text_file": file_name,
            "text_bytes": file_bytes,
            "text_note": "one trailing newline is dropped before tokenizing, as llama.cpp's -f does",
            "tokens_total": tokens.len(),
            "n_ctx": n_ctx,
            "n_batch": n_batch,
            "n_threads": threads,
            "flash_attn": fa,
            "kv_cache_type": "f16",
            "add_bos": add_bos,
            "method": "non-overlapping chunks of n_ctx tokens from the start of the file (tokenized whole, add_special per model); \
                       each chunk evaluated from an empty KV cache; outputs for positions n_ctx/2 .. n_ctx-1; positions \
                       n_ctx/2 .. n_ctx-2 score the next token (n_ctx/2 - 1 tokens per chunk); NLL = -log_softmax in \
                       double as perplexity.cpp; PPL = exp(mean NLL over all scored tokens)",
            "runs": runs,
        });
        std::fs::write(path, to_json_compactish(&doc))?;
        eprintln!("updated {path}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// bench

const BENCH_TEXT: &str = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age \
of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the \
season of Darkness, it was the spring of hope, it was the winter of despair, we had everything before us, we had \
nothing before us, we were all going direct to Heaven, we were all going direct the other way - in short, the period \
was so far like the present period, that some of its noisiest authorities insisted on its being received, for good or \
for evil, in the superlative degree of comparison only. There were a king with a large jaw and a queen with a plain \
face, on the throne of England; there were a king with a large jaw and a queen with a fair face, on the throne of \
France. In both countries it was clearer than crystal to the lords of the State preserves of loaves and fishes, that \
things in general were settled for ever.";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn cmd_bench(backend: &LlamaBackend, a: &Args) -> Res<()> {
    let model_path = a.req("model")?;
    let threads: i32 = a.num("threads", 1)?;
    let runs: usize = a.num("runs", 5)?;
    let n_prompt: usize = a.num("prompt", 128)?;
    let n_gen: usize = a.num("gen", 128)?;
    let fa = a.get("flash-attn").unwrap_or("off").to_string();
    let model = load_model(backend, model_path)?;
    assert!(n_prompt >= 1, "--prompt must be at least 1");
    // As `ingot bench`: a context of at least 512, the whole prompt in one batch, and the bench
    // text's tokens repeated after its last one for prompts longer than the text.
    let n_ctx = 512.max(n_prompt + n_gen + 1) as u32;
    let cfg = CtxCfg { n_ctx, n_batch: n_ctx.max(n_prompt as u32), threads, flash_attn: fa.clone() };
    let mut ctx = new_ctx(&model, backend, &cfg)?;
    let all = tokenize(&model, BENCH_TEXT, false);
    let prompt: Vec<LlamaToken> = all.iter().copied().cycle().take(n_prompt).collect();
    let prompt = &prompt[..];
    let mut batch = LlamaBatch::new(cfg.n_batch as usize, 1);
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    let mut generated: Vec<i32> = Vec::new();
    for run in 0..=runs {
        ctx.clear_kv_cache();
        batch.clear();
        for (i, t) in prompt.iter().enumerate() {
            batch.add(*t, i as i32, &[0], i + 1 == prompt.len())?;
        }
        let t0 = Instant::now();
        ctx.decode(&mut batch)?;
        ctx.synchronize();
        let t_pp = t0.elapsed().as_secs_f64();
        let mut next = argmax(ctx.get_logits_ith(n_prompt as i32 - 1)) as i32;
        let mut gen = vec![next];
        let t1 = Instant::now();
        for s in 0..n_gen {
            batch.clear();
            batch.add(LlamaToken(next), (n_prompt + s) as i32, &[0], true)?;
            ctx.decode(&mut batch)?;
            next = argmax(ctx.get_logits_ith(0)) as i32;
            gen.push(next);
        }
        ctx.synchronize();
        let t_tg = t1.elapsed().as_secs_f64();
        let (ppt, tgt) = (n_prompt as f64 / t_pp, n_gen as f64 / t_tg);
        if run == 0 {
            eprintln!("warmup: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s");
            generated = gen;
        } else {
            eprintln!("run {run}: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s");
            assert_eq!(gen, generated, "greedy output changed between runs");
            pp.push(ppt);
            tg.push(tgt);
        }
    }
    println!("system_info = {}", system_info());
    println!("model = {model_path}, threads = {threads}, flash_attn = {fa}, kv = f16, runs = {runs} (+1 warmup)");
    println!("prefill {n_prompt} tokens in one batch: median {:.1} tok/s  (runs: {:?})",
             median(&mut pp.clone()), pp.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    println!("decode {n_gen} tokens one at a time: median {:.1} tok/s  (runs: {:?})",
             median(&mut tg.clone()), tg.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>());
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS = {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn main() -> Res<()> {
    let a = Args::parse()?;
    let mut backend = LlamaBackend::init()?;
    if a.get("quiet").is_some_and(|v| v != "0") || a.cmd == "tokenize" {
        backend.void_logs();
    }
    match a.cmd.as_str() {
        "logits" => cmd_logits(&backend, &a),
        "tokenize" => cmd_tokenize(&backend, &a),
        "perplexity" => cmd_perplexity(&backend, &a),
        "bench" => cmd_bench(&backend, &a),
        "op-parity" => opcheck::cmd_op_parity(
            a.req("model")?,
            a.get("fixture").unwrap_or("../../testdata/peer/smollm2-q4_1.json"),
            a.num("case", 0)?,
            a.num("layers", 1)?,
            a.num("decode", 1)? != 0,
        ),
        "kernel-parity" => parity::cmd_kernel_parity(a.num("rows", 200)?, a.num("seed", 1)?),
        "quantize-parity" => quantize::cmd_quantize_parity(a.get("model"), a.get("out"), a.num("seed", quant_inputs::SEED)?),
        "kquant-parity" => kquants::cmd_kquant_parity(a.get("model"), a.get("out"), a.num("seed", quant_inputs::SEED)?),
        "quantize-file" => quantize::cmd_quantize_file(
            a.req("in")?,
            a.req("out")?,
            a.req("type")?,
            a.num("allow-requantize", 0)? != 0,
            a.num("threads", 0)?,
        ),
        "gguf-diff" => quantize::cmd_gguf_diff(a.req("a")?, a.req("b")?),
        "sysinfo" => {
            println!("{}", system_info());
            Ok(())
        }
        other => Err(format!("unknown subcommand {other}").into()),
    }
}
