//! The built-in chat template renderer (no Jinja engine) against Hugging Face's jinja2 on real templates
//! of every family it knows (testdata/chat/families.json, made by
//! tools/oracles/make_chat_families_fixture.py), and, with the `jinja` feature, minijinja against the
//! same strings: the two engines agree byte for byte wherever the built-in one accepts a template.

use ingot_runtime::chat::{ChatMessage, ChatTemplate, Family};
use ingot_runtime::Error;
use serde_json::Value as Json;

fn fixtures() -> Vec<Json> {
    let path = format!(
        "{}/../testdata/chat/families.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Json>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn messages(case: &Json) -> Vec<ChatMessage> {
    case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

/// Every case of every template: the same text as jinja2, or an error where jinja2 raised one (with
/// the template's own message when it came from `raise_exception`).
fn check(engine: &str, make: impl Fn(&str, &str, &str) -> ChatTemplate) {
    let all = fixtures();
    assert!(all.len() >= 10);
    for f in &all {
        let model = f["model"].as_str().unwrap();
        let tpl = make(
            f["template"].as_str().unwrap(),
            f["bos_token"].as_str().unwrap(),
            f["eos_token"].as_str().unwrap(),
        );
        for case in f["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let got = tpl.render(
                &messages(case),
                case["add_generation_prompt"].as_bool().unwrap(),
            );
            match (case.get("expected"), case.get("error")) {
                (Some(expected), _) => assert_eq!(
                    got.as_deref().map_err(|e| e.to_string()),
                    Ok(expected.as_str().unwrap()),
                    "{engine}: {model} / {name}"
                ),
                (None, Some(error)) => {
                    let error = error.as_str().unwrap();
                    match got {
                        // jinja2's wording for indexing an empty list is its own; raise_exception's is the
                        // template's, and both engines must carry it.
                        Err(Error::Template { what }) => assert!(
                            error.contains("has no element") || what.contains(error),
                            "{engine}: {model} / {name}: {what:?} lacks {error:?}"
                        ),
                        other => {
                            panic!("{engine}: {model} / {name}: expected an error, got {other:?}")
                        }
                    }
                }
                _ => panic!("{model} / {name}: case has neither expected nor error"),
            }
        }
    }
}

#[test]
fn builtin_renderer_matches_hugging_face() {
    check("builtin", |src, bos, eos| {
        ChatTemplate::builtin(src, bos, eos).unwrap()
    });
}

#[cfg(feature = "jinja")]
#[test]
fn minijinja_matches_hugging_face_on_the_same_templates() {
    check("jinja", |src, bos, eos| {
        ChatTemplate::new(src, bos, eos).unwrap()
    });
}

#[test]
fn every_fixture_is_detected_as_its_family() {
    for f in fixtures() {
        let family = Family::detect(f["template"].as_str().unwrap());
        let want = f["family"].as_str().unwrap();
        let got = match family {
            Some(Family::ChatMl { .. }) => "chatml",
            Some(Family::Llama2) => "llama2",
            Some(Family::Llama3) => "llama3",
            Some(Family::Zephyr) => "zephyr",
            Some(Family::Gemma { .. }) => "gemma",
            Some(Family::Phi3 { .. }) => "phi3",
            Some(Family::Mistral { .. }) => "mistral",
            None => "none",
        };
        assert_eq!(got, want, "{}", f["model"]);
    }
    // SmolLM2's default system prompt comes from the template text.
    let smollm2 = fixtures()
        .into_iter()
        .find(|f| f["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct")
        .unwrap();
    assert_eq!(
        Family::detect(smollm2["template"].as_str().unwrap()),
        Some(Family::ChatMl {
            default_system: Some(
                "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
            )
        })
    );
}

#[test]
fn templates_beyond_the_known_families_are_refused_with_a_clear_error() {
    // The Llama-3.1-style template of testdata/chat/llama3.json (dates, namespace), the Jinja feature
    // fixture, and plain text: the built-in renderer must not approximate them.
    for name in ["llama3", "features"] {
        let path = format!(
            "{}/../testdata/chat/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let f: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let err =
            ChatTemplate::builtin(f["template"].as_str().unwrap(), "<s>", "</s>").unwrap_err();
        assert!(err.to_string().contains("feature `jinja`"), "{name}: {err}");
    }
    assert!(ChatTemplate::builtin("{{ messages }}", "", "").is_err());
    // The ChatML fallback is a known family either way.
    let chatml = ChatTemplate::chatml()
        .render(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert_eq!(
        chatml,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}
