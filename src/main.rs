//! The `ingot` command line: inspect, tokenize, generate, chat and measure perplexity with GGUF models.
//! Each subcommand lives in its own module under `commands/`; this file only parses arguments.

#![forbid(unsafe_code)]

mod commands;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "ingot",
    version,
    about = "A Rust LLM stack: GGUF models from training to fast inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model's architecture, hyperparameters, tokenizer and tensor table.
    Info(InfoArgs),
    /// Print the exact memory a session needs: weights (mapped), KV cache and scratch, in bytes.
    Plan(PlanArgs),
    /// Continue a raw-text prompt (no chat template); the generated text streams to stdout.
    Generate(GenerateArgs),
    /// Chat with a model using its own chat template (interactive, or one user turn per stdin line).
    Chat(ChatArgs),
    /// Print the token ids of TEXT as a JSON array.
    Tokenize(TokenizeArgs),
    /// Print the text of token ids.
    Detokenize(DetokenizeArgs),
    /// Perplexity of a text file, computed the way llama.cpp's `llama-perplexity` does.
    Perplexity(PerplexityArgs),
    /// Prefill and decode speed (tok/s), measured as tools/peer measures llama.cpp.
    Bench(BenchArgs),
    /// Convert a model (GGUF, Hugging Face safetensors or an ingot checkpoint) to a GGUF file of a chosen type.
    Convert(ConvertArgs),
    /// Train a model from scratch (`ingot train pretrain --help`).
    Train(commands::train::TrainArgs),
    /// Pretrain, SFT, reward model, PPO and Q8_0 GGUF in one resumable command (--extras: DPO and a
    /// second RM/PPO round), with a report (markdown and SVG curves).
    Pipeline(commands::pipeline::PipelineArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "\
Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
Presets (llama.cpp's): Q2_K, Q3_K_M, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K (more bits for some attn_v,
ffn_down and attn_output tensors).
Per tensor: 1-D tensors and norms stay F32; with a quantized target other than Q8_0, output.weight (and tied
token_embd.weight) become Q6_K, or Q8_0 when rows are not multiples of 256; an untied token_embd is kept at
Q8_0; rows that are not whole blocks fall back as llama.cpp does (Q4_K -> Q5_0, Q6_K -> Q8_0, ..., else F16);
an already-quantized tensor is copied when its type does not change. See convert/README.md.
Example: ingot convert SmolLM2.Q4_1.gguf -o smollm2-q4_k_m.gguf --type Q4_K_M --allow-requantize
The output is written to a temporary file next to OUT and renamed when complete.")]
pub struct ConvertArgs {
    /// Input model: a GGUF file (requantized), a Hugging Face `LlamaForCausalLM` directory
    /// (config.json, *.safetensors, tokenizer.json), or an ingot training run or checkpoint
    /// directory (`ingot train pretrain --out DIR`: DIR converts its `latest` checkpoint).
    pub input: PathBuf,
    /// Output GGUF file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Output type or llama.cpp preset (case-insensitive), e.g. Q8_0, Q4_K, Q4_K_M.
    #[arg(short = 't', long = "type")]
    pub r#type: String,
    /// Allow quantizing tensors that are already quantized to another quantized type (through f32;
    /// the precision lost by the first quantization stays lost).
    #[arg(long)]
    pub allow_requantize: bool,
    /// PATTERN=TYPE: tensors whose name contains PATTERN (a glob: * ? [0-9], ^ and $ anchor) get TYPE;
    /// repeatable, the first match wins.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    pub tensor_type: Vec<String>,
    /// Threads for quantization (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No per-tensor progress lines (the summary is still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Example: ingot bench -m models/SmolLM2-135M-Instruct.Q4_1.gguf --threads 2 --roofline
The `kernels = ...` line names the CPU kernel path that ran: the fastest this CPU has (avx512 > avxvnni >
avx2 > scalar on x86_64; dotprod > neon on aarch64), or the one INGOT_ISA forces:
  INGOT_ISA=avx2 ingot bench -m MODEL        (scalar|avx2|avxvnni|avx512|neon|dotprod)")]
pub struct BenchArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Threads for the forward pass. With two or more, each run also reports where the OS had
    /// the threads during its decode steps: `together` (cores sharing a last-level cache),
    /// `apart`, or `changing`, from the round trip of a cache line between two of them measured
    /// before and after the steps (apart above 180 ns); on shared VMs the host moves vCPUs every
    /// few seconds, and the two placements differ in bandwidth and in the cost of every meeting.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// KV cache element type: f16 (llama.cpp's default, bit-identical logits) or f32 (nothing
    /// rounded: for checking a model against its training framework; twice the cache memory).
    #[arg(long, default_value = "f16")]
    pub kv_type: ingot_runtime::model::KvType,
    /// Prompt tokens, evaluated in one batch (llama-bench's -p).
    #[arg(long = "n-prompt", alias = "prompt", default_value_t = 128)]
    pub n_prompt: usize,
    /// Tokens generated one at a time, greedy (llama-bench's -n).
    #[arg(long = "n-gen", alias = "gen", default_value_t = 128)]
    pub n_gen: usize,
    /// Context length of the session (tokens its KV cache holds), at least n-prompt + n-gen + 1;
    /// default the larger of that and 512. `ingot chat` and `generate` default to 2048.
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Timed runs after one warm-up; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also measure memory read bandwidth and report decode speed against the bandwidth roofline
    /// (bytes read per token / bandwidth): each decode run against the mean of a bandwidth
    /// measurement just before and one just after it, over all runs and over the steady ones
    /// (the two measurements within 10%), as shared machines change bandwidth within seconds;
    /// with two or more threads, also per placement of the threads (see --threads).
    #[arg(long)]
    pub roofline: bool,
    /// Where the forward pass runs: cpu, or cuda (a build with --features cuda and an NVIDIA GPU).
    #[arg(long, value_enum, default_value_t = commands::device::Device::Cpu)]
    pub device: commands::device::Device,
    /// Print one JSON object on stdout (prefill_tok_s, decode_tok_s, threads, model, every run,
    /// peak RSS, the runs' placement_runs and round_trip_ns_runs, and with --roofline the bandwidth
    /// figures, fraction_by_placement among them); the readable report goes to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Example: ingot plan -m models/SmolLM2-135M-Instruct.Q4_1.gguf --ctx 512
The `session` line is exactly what ingot_session_arena_size() returns in the C ABI: a caller-owned
arena of that many bytes (ingot_session_new_in_arena) holds the whole session; one byte less is refused.
Weights are not copied: they are read from the memory-mapped file (or the caller's buffer).")]
pub struct PlanArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Context length (tokens the KV cache holds).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Threads (each has its own attention scratch).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// KV cache element type: f16 (llama.cpp's default, bit-identical logits) or f32 (nothing
    /// rounded: for checking a model against its training framework; twice the cache memory).
    #[arg(long, default_value = "f16")]
    pub kv_type: ingot_runtime::model::KvType,
    /// Most tokens evaluated in one batch (clamped to --ctx).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// GGUF model file.
    pub model: PathBuf,
    /// Context length used for the memory estimate.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
}

/// Sampling options shared by `generate` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities add up to P (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than MIN_P times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalize tokens seen in the last `--repeat-last-n` tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Window for the repetition, frequency and presence penalties.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Subtract this times a token's count in the window from its logit.
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Subtract this from the logit of every token present in the window.
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Random seed: the same seed gives the same text.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// GGUF model file [default: the bundled chat model, assets/ingot-chat.Q8_0.gguf].
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// The prompt, as raw text (special tokens such as <|im_start|> written in it are recognized).
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Tokens to generate at most (generation also stops at an end-of-generation token).
    #[arg(short = 'n', long, default_value_t = 128)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Threads for the forward pass (each matrix product is split by rows; output is identical for
    /// any count).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// KV cache element type: f16 (llama.cpp's default, bit-identical logits) or f32 (nothing
    /// rounded: for checking a model against its training framework; twice the cache memory).
    #[arg(long, default_value = "f16")]
    pub kv_type: ingot_runtime::model::KvType,
    /// Context length: prompt plus generated tokens.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Where the forward pass runs: cpu, or cuda (a build with --features cuda and an NVIDIA GPU).
    #[arg(long, value_enum, default_value_t = commands::device::Device::Cpu)]
    pub device: commands::device::Device,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Commands typed as a user turn: /reset clears the conversation, /quit leaves.
When stdin is not a terminal each line is one user turn and replies are printed one after another.

Context policy: before each reply the whole conversation is rendered with the model's chat template.
If it does not leave room for --max-reply tokens in the context window, the system prompt is kept and
the oldest user/assistant turns are dropped, whole, until it does; a message says how many were dropped.
A single turn too long to fit is an error.")]
pub struct ChatArgs {
    /// GGUF model file [default: the bundled chat model, assets/ingot-chat.Q8_0.gguf].
    #[arg(short = 'm', long)]
    pub model: Option<PathBuf>,
    /// System prompt (the template's own default is used when absent).
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens in one reply.
    #[arg(long, default_value_t = 512)]
    pub max_reply: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Threads for the forward pass.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// KV cache element type: f16 (llama.cpp's default, bit-identical logits) or f32 (nothing
    /// rounded: for checking a model against its training framework; twice the cache memory).
    #[arg(long, default_value = "f16")]
    pub kv_type: ingot_runtime::model::KvType,
    /// Context length of the conversation.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Where the forward pass runs: cpu, or cuda (a build with --features cuda and an NVIDIA GPU).
    #[arg(long, value_enum, default_value_t = commands::device::Device::Cpu)]
    pub device: commands::device::Device,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Text to tokenize.
    pub text: String,
    /// Do not add the special tokens the model asks for (BOS/EOS).
    #[arg(long)]
    pub no_special: bool,
    /// Treat special-token text such as <|im_start|> as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
}

#[derive(Args, Debug)]
pub struct DetokenizeArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Token ids (separate arguments, or one JSON array such as "[1,2,3]").
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// GGUF model file.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// Text file to score.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Tokens per chunk; the second half of each chunk is scored.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Score at most this many chunks (default: all that fit in the file).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Tokens evaluated per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Threads for the forward pass.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// KV cache element type: f16 (llama.cpp's default, bit-identical logits) or f32 (nothing
    /// rounded: for checking a model against its training framework; twice the cache memory).
    #[arg(long, default_value = "f16")]
    pub kv_type: ingot_runtime::model::KvType,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(warning) = ingot_kernels::Kernels::from_env() {
        eprintln!("warning: {warning}");
    }
    let result = match cli.command {
        Command::Info(a) => commands::info::run(&a),
        Command::Plan(a) => commands::plan::run(&a),
        Command::Generate(a) => commands::generate::run(&a),
        Command::Chat(a) => commands::chat::run(&a),
        Command::Tokenize(a) => commands::tokenize::run_tokenize(&a),
        Command::Detokenize(a) => commands::tokenize::run_detokenize(&a),
        Command::Perplexity(a) => commands::perplexity::run(&a),
        Command::Bench(a) => commands::bench::run(&a),
        Command::Convert(a) => commands::convert::run(&a),
        Command::Train(a) => commands::train::run(&a),
        Command::Pipeline(a) => commands::pipeline::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
