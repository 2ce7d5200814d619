//! The committed default chat model (`assets/ingot-chat.Q8_0.gguf`, made by `ingot pipeline`): it
//! loads, its ChatML template renders exactly the text the trainer aligned it on
//! (`ingot_train::align::chatml`), its `<|im_end|>` ends a reply, a greedy answer to a held-out task
//! prompt is a non-empty line, and `ingot chat` uses it when no `-m` is given (a fresh conversation
//! per prompt: the model was trained on single turns in a context of 64 tokens).

use ingot_runtime::chat::{ChatMessage, ChatTemplate};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::{Model, Session, SessionParams};
use ingot_runtime::sampler::{Sampler, SamplerParams};
use ingot_train::align::{chatml, Message};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/ingot-chat.Q8_0.gguf")
}

#[test]
fn bundled_model_renders_chatml_and_answers() {
    let path = bundled();
    let size = std::fs::metadata(&path)
        .expect("assets/ingot-chat.Q8_0.gguf is committed")
        .len();
    assert!(size <= 8_000_000, "{size} bytes");
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_file(&file).unwrap();
    let tok = &model.tokenizer;
    let src = model.chat_template.expect("a tokenizer.chat_template");
    let template = ChatTemplate::new(src, "", "").unwrap();
    let user = "Write a line about love.";
    let rendered = template
        .render(&[ChatMessage::new("user", user)], true)
        .unwrap();
    assert_eq!(rendered, chatml(&[Message::new("user", user)], true));
    let prompt = tok.encode(&rendered, false, true);
    let im_start = tok.token_to_id("<|im_start|>").expect("<|im_start|> token");
    let im_end = tok.token_to_id("<|im_end|>").expect("<|im_end|> token");
    assert_eq!(prompt[0], im_start, "ChatML markers are control tokens");
    assert!(tok.is_eog(im_end), "<|im_end|> ends a reply");

    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx: model.config.n_ctx_train.min(256),
            n_batch: 64,
            n_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sampler = Sampler::new(
        SamplerParams {
            temperature: 0.0,
            ..SamplerParams::default()
        },
        model.config.n_vocab,
    )
    .unwrap();
    let mut logits = session.prefill(&prompt).unwrap();
    let mut answer = Vec::new();
    let mut ended = false;
    for _ in 0..40 {
        let next = sampler.sample(logits);
        if tok.is_eog(next) {
            ended = true;
            break;
        }
        answer.push(next);
        logits = session.decode(next).unwrap();
    }
    let text = tok.decode(&answer, false);
    assert!(ended, "no <|im_end|> within 40 tokens: {text:?}");
    assert!(!text.trim().is_empty() && !text.contains('\n'), "{text:?}");
}

#[test]
fn chat_defaults_to_the_bundled_model() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["chat", "--temp", "0"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Write a line about the sea.\n/reset\nTell me of love.\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("no chat template"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    let replies: Vec<&str> = out.lines().collect();
    assert_eq!(replies.len(), 2, "one line per turn: {out:?}");
    assert!(replies.iter().all(|r| !r.trim().is_empty()), "{out:?}");
}
