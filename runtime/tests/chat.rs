#![cfg(feature = "jinja")]
//! Chat templates against Hugging Face's own renderer (fixtures from tools/oracles/make_chat_fixture.py,
//! which renders with jinja2 in HF's environment), plus errors, globals and history fitting.

use ingot_runtime::chat::{fit_history, ChatMessage, ChatTemplate};
use ingot_runtime::Error;
use serde_json::Value as Json;

/// SmolLM2-135M-Instruct's `tokenizer.chat_template`, exactly as in its GGUF file (the string literals
/// hold real newlines). With no system message it injects "You are a helpful AI assistant named SmolLM,
/// trained by Hugging Face".
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}\
{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}\
{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn fixture(name: &str) -> Json {
    let path = format!(
        "{}/../testdata/chat/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs
        .iter()
        .map(|&(role, content)| ChatMessage::new(role, content))
        .collect()
}

/// Renders every case of a fixture and compares with jinja2's output or error message.
fn check_fixture(name: &str) {
    let f = fixture(name);
    let tpl = ChatTemplate::new(
        f["template"].as_str().unwrap(),
        f["bos_token"].as_str().unwrap(),
        f["eos_token"].as_str().unwrap(),
    )
    .unwrap();
    for case in f["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let got = tpl.render(&messages, case["add_generation_prompt"].as_bool().unwrap());
        match (case.get("expected"), case.get("error")) {
            (Some(expected), _) => {
                assert_eq!(
                    got.unwrap(),
                    expected.as_str().unwrap(),
                    "{name}/{case_name}"
                );
            }
            (None, Some(error)) => match got {
                Err(Error::Template { what }) => {
                    assert!(
                        what.contains(error.as_str().unwrap()),
                        "{name}/{case_name}: {what}"
                    )
                }
                other => panic!("{name}/{case_name}: expected a template error, got {other:?}"),
            },
            _ => panic!("{name}/{case_name}: case has neither expected nor error"),
        }
    }
}

#[test]
fn smollm2_matches_hugging_face() {
    assert_eq!(
        fixture("smollm2")["template"].as_str().unwrap(),
        SMOLLM2,
        "test constant and fixture differ"
    );
    check_fixture("smollm2");
}

#[test]
fn llama3_style_matches_hugging_face() {
    check_fixture("llama3");
}

#[test]
fn mistral_style_matches_hugging_face() {
    check_fixture("mistral");
}

#[test]
fn python_methods_and_tojson_match_hugging_face() {
    check_fixture("features");
}

#[test]
fn smollm2_injects_default_system_prompt() {
    let tpl = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let out = tpl.render(&msgs(&[("user", "Hi")]), true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn raise_exception_becomes_template_error() {
    let mistral = fixture("mistral");
    let tpl = ChatTemplate::new(mistral["template"].as_str().unwrap(), "<s>", "</s>").unwrap();
    match tpl.render(&msgs(&[("user", "a"), ("user", "b")]), false) {
        Err(Error::Template { what }) => {
            assert!(what.contains("Conversation roles must alternate"), "{what}")
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    let llama3 = fixture("llama3");
    let tpl = ChatTemplate::new(
        llama3["template"].as_str().unwrap(),
        "<|begin_of_text|>",
        "<|eot_id|>",
    )
    .unwrap();
    match tpl.render(
        &msgs(&[("system", "s"), ("assistant", "a"), ("assistant", "b")]),
        true,
    ) {
        Err(Error::Template { what }) => {
            assert!(what.contains("Conversation roles must alternate"), "{what}");
            assert!(
                what.contains("chat_template:"),
                "error should carry the location: {what}"
            );
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn syntax_error_names_the_line() {
    let source = "{% for m in messages %}\n{{ m.role }\n{% endfor %}";
    match ChatTemplate::new(source, "", "") {
        Err(Error::Template { what }) => assert!(what.contains("chat_template:2"), "{what}"),
        other => panic!("expected a template error, got {other:?}"),
    }
    assert!(matches!(
        ChatTemplate::new("{% if x %}", "", ""),
        Err(Error::Template { .. })
    ));
}

#[test]
fn chatml_fallback() {
    let tpl = ChatTemplate::chatml();
    let out = tpl
        .render(&msgs(&[("system", "S"), ("user", "U")]), true)
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(tpl.render(&[], false).unwrap(), "");
}

#[test]
fn globals_and_variables() {
    let render = |source: &str| {
        ChatTemplate::new(source, "<s>", "</s>")
            .unwrap()
            .render(&msgs(&[]), true)
    };
    assert_eq!(
        render("{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}").unwrap(),
        "<s>|</s>|True"
    ); // Python spelling, as jinja2 prints it
    assert_eq!(
        render("{% if tools is none and documents is none %}none{% endif %}").unwrap(),
        "none"
    );
    assert_eq!(
        render("{% if not tools %}no tools{% endif %}").unwrap(),
        "no tools"
    );
    assert_eq!(
        render("{{ undefined_thing }}{% if undefined_thing is not defined %}ok{% endif %}")
            .unwrap(),
        "ok"
    );
    // Loop controls (HF enables jinja2.ext.loopcontrols).
    assert_eq!(
        render("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}")
            .unwrap(),
        "012"
    );
    // trim_blocks / lstrip_blocks: block lines leave no whitespace; one trailing newline is dropped.
    assert_eq!(
        render("  {% if true %}\nA\n  {% endif %}\nB\n").unwrap(),
        "A\nB"
    );

    // strftime_now: today's date in UTC; only check its shape.
    let year = render("{{ strftime_now('%Y') }}").unwrap();
    assert!(year.len() == 4 && year.as_str() >= "2024", "{year}");
    let date = render("{{ strftime_now('%d %b %Y') }}").unwrap();
    assert_eq!(date.len(), 11, "{date}");
    assert!(matches!(
        render("{{ strftime_now('%Z') }}"),
        Err(Error::Template { .. })
    ));

    // tojson keyword arguments as in HF's filter.
    assert_eq!(
        render("{{ {'b': 1, 'a': [1, 2]}|tojson(sort_keys=true) }}").unwrap(),
        r#"{"a": [1, 2], "b": 1}"#
    );
    assert_eq!(
        render("{{ [1, {'x': none}]|tojson(indent=1) }}").unwrap(),
        "[\n 1,\n {\n  \"x\": null\n }\n]"
    );
    assert_eq!(
        render("{{ ['é']|tojson(ensure_ascii=true) }}").unwrap(),
        r#"["\u00e9"]"#
    );
    assert_eq!(
        render("{{ {'a': 1}|tojson(separators=[',', ':']) }}").unwrap(),
        r#"{"a":1}"#
    );
    assert_eq!(
        render("{{ [[], {}]|tojson(indent=2) }}").unwrap(),
        "[\n  [],\n  {}\n]"
    );
}

/// One token per whitespace-separated word: enough to make budgets easy to reason about.
fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

#[test]
fn fit_history_drops_oldest_pairs_and_keeps_system() {
    let tpl = ChatTemplate::chatml();
    let original = msgs(&[
        ("system", "one two three"),
        ("user", "u1 u1 u1 u1"),
        ("assistant", "a1 a1 a1 a1"),
        ("user", "u2 u2"),
        ("assistant", "a2 a2"),
        ("user", "u3"),
    ]);
    let cost = |m: &[ChatMessage]| words(&tpl.render(m, true).unwrap());
    let full = cost(&original);

    // Everything fits: nothing dropped.
    let mut m = original.clone();
    assert_eq!(fit_history(&tpl, &mut m, full, &words).unwrap(), 0);
    assert_eq!(m, original);

    // One word short: the oldest pair goes, the system prompt stays.
    let mut m = original.clone();
    assert_eq!(fit_history(&tpl, &mut m, full - 1, &words).unwrap(), 2);
    let expected: Vec<ChatMessage> = [0, 3, 4, 5].iter().map(|&i| original[i].clone()).collect();
    assert_eq!(m, expected);
    assert!(cost(&m) < full);

    // Budget for the system prompt and last user message only.
    let minimal: Vec<ChatMessage> = [0, 5].iter().map(|&i| original[i].clone()).collect();
    let mut m = original.clone();
    assert_eq!(
        fit_history(&tpl, &mut m, cost(&minimal), &words).unwrap(),
        4
    );
    assert_eq!(m, minimal);

    // Not even that fits: a request error, and the history is left as it was.
    let mut m = original.clone();
    match fit_history(&tpl, &mut m, cost(&minimal) - 1, &words) {
        Err(Error::Request { what }) => assert!(what.contains("does not fit"), "{what}"),
        other => panic!("expected a request error, got {other:?}"),
    }
    assert_eq!(m, original);
}

#[test]
fn fit_history_without_system_drops_whole_turns() {
    // SmolLM2 injects its default system prompt; the turns dropped are the user's and what follows it.
    let tpl = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let original = msgs(&[
        ("user", "first question"),
        ("assistant", "first answer"),
        ("tool", "tool output"),
        ("user", "second question"),
        ("assistant", "second answer"),
        ("user", "third question"),
    ]);
    let mut m = original.clone();
    let budget = words(&tpl.render(&original[3..], true).unwrap());
    assert_eq!(fit_history(&tpl, &mut m, budget, &words).unwrap(), 3);
    assert_eq!(m, original[3..]);
}
