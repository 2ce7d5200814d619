//! The bundled alignment task: chat prompts built from a corpus (the bundled Shakespeare by default) by
//! a seeded generator, demonstrations drawn from the same corpus for SFT, and a programmatic
//! [`Labeler`] that stands in for the human rankers of InstructGPT: it scores an answer by checkable
//! preferences. The labeler ranks pairs of sampled answers for the reward model and judges the end
//! result; it is never part of a training loss.
//!
//! **Prompts.** Two kinds, each one user message:
//! - *Write*: `"{template}"` with a topic from [`TOPICS`] (`"Write a line about {topic}."`, six
//!   templates in [`WRITE_TEMPLATES`]); the demonstration is a corpus line that contains the topic
//!   as a word.
//! - *Continue*: `"Continue: {opening}"` where the opening is the first two or three words of a corpus
//!   line; the demonstration is the rest of that line.
//!
//! **Lines.** A corpus line is usable when, trimmed, it has 20 to 60 characters, starts with an
//! uppercase letter, holds no word of two or more capitals (speaker names), no digit and none of
//! `[]_{}*@/&"`, so stage directions and headings drop out.
//!
//! **Split.** The corpus text's first 90% (by bytes, the pretraining split) gives training lines, the
//! last 10% held-out lines; a topic is used when it has two training lines and one held-out line. The (template, topic) Write prompts are shuffled with the seed and a
//! quarter held out; held-out Continue prompts come from held-out lines. No held-out prompt text
//! occurs among the training prompts.
//!
//! **Labeler** ([`Labeler::score`], higher is better, in `[-1, 4]`):
//! - *on task* (0 or 1): a Write answer mentions its topic as a word; a Continue answer does not
//!   restart with its opening words;
//! - *tone* (-1, 0 or 1): the number of words from [`POSITIVE`] minus those from [`GRIM`], clamped;
//! - *form* (0 or 1): one line (no newline), 20 to 60 characters for Write and 8 to 50 for Continue
//!   after trimming, ending in a letter or one of `.,;:!?'`;
//! - *words* (0 to 1): the fraction of its words that occur at least twice among the training lines
//!   (so invented character soup scores low).

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Topics of the Write prompts: common words of the corpus with enough lines in both parts.
pub const TOPICS: &[&str] = &[
    "love", "king", "night", "heart", "sea", "sun", "queen", "lord", "day", "eyes", "world",
    "heaven", "time", "father", "son", "friend", "life", "soul", "face", "name", "earth", "light",
    "tongue", "honour", "hand", "mother", "brother", "lady", "god", "fortune", "beauty", "youth",
    "music", "war", "horse", "sword", "blood", "death", "fire", "water", "wind", "dream", "sleep",
    "morning", "grace", "joy", "peace", "hope", "truth", "house",
];

/// The Write prompts' templates; `{}` is the topic.
pub const WRITE_TEMPLATES: &[&str] = &[
    "Write a line about {}.",
    "Write one line about {}.",
    "Give me a line about {}.",
    "Say something about {}.",
    "A line on {}, please.",
    "Tell me of {}.",
];

/// Words of a positive tone.
pub const POSITIVE: &[&str] = &[
    "love",
    "loves",
    "loved",
    "joy",
    "sweet",
    "fair",
    "happy",
    "gentle",
    "good",
    "bright",
    "merry",
    "hope",
    "grace",
    "kind",
    "smile",
    "peace",
    "glad",
    "dear",
    "blessed",
    "bless",
    "delight",
    "laugh",
    "true",
    "noble",
    "honest",
    "beauty",
    "beauteous",
    "heaven",
    "pleasure",
    "comfort",
    "friend",
    "friends",
    "music",
    "golden",
    "mirth",
    "content",
    "wise",
    "warm",
    "thanks",
    "welcome",
];

/// Words of a grim tone.
pub const GRIM: &[&str] = &[
    "death", "dead", "die", "dies", "blood", "bloody", "grave", "kill", "killed", "hate", "murder",
    "woe", "curse", "cursed", "grief", "tears", "weep", "slain", "sorrow", "foul", "fear",
    "poison", "hell", "despair", "wretched", "villain", "vile", "sin", "pain", "cruel", "sick",
    "plague", "wound", "ghost", "tomb", "doom", "false", "traitor", "damned", "mad",
];

/// Length bounds of a usable corpus line, in characters.
const LINE_CHARS: (usize, usize) = (20, 60);
/// Length bounds of a good Write answer and of a good Continue answer, in characters.
const WRITE_CHARS: (usize, usize) = (20, 60);
const CONTINUE_CHARS: (usize, usize) = (8, 50);

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A line that mentions `topic`.
    Write { topic: String },
    /// The rest of a line that starts with `opening`.
    Continue { opening: String },
}

/// One prompt: its kind and the user message it is rendered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: Kind,
    /// The user message.
    pub text: String,
}

/// A prompt with a demonstration answer from the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub prompt: Prompt,
    pub answer: String,
}

/// How much to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConfig {
    pub seed: u64,
    /// Training examples (prompt and demonstration), drawn with replacement, half of each kind.
    pub train_examples: usize,
    /// Held-out prompts (each with a held-out demonstration); at least the Write prompts held out.
    pub heldout_prompts: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            seed: 1337,
            train_examples: 20_000,
            heldout_prompts: 300,
        }
    }
}

/// The generated task.
#[derive(Debug, Clone)]
pub struct Task {
    pub train: Vec<Example>,
    pub heldout: Vec<Example>,
    pub labeler: Labeler,
}

/// The words of `text`: maximal runs of ASCII letters and inner apostrophes, lowercased.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphabetic() || c == '\''))
        .map(|w| w.trim_matches('\'').to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn usable_line(line: &str) -> bool {
    let n = line.chars().count();
    n >= LINE_CHARS.0
        && n <= LINE_CHARS.1
        && line.starts_with(|c: char| c.is_ascii_uppercase())
        && !line.contains(|c: char| c.is_ascii_digit() || "[]_{}*@/&\"".contains(c))
        && !line
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase()))
}

fn usable_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| usable_line(l))
        .collect()
}

/// `(opening, rest)` of a line for a Continue prompt: the first `k` words and the text after them.
fn split_opening(line: &str, k: usize) -> Option<(&str, &str)> {
    let mut ends = line.match_indices(' ').map(|(i, _)| i);
    let cut = ends.nth(k - 1)?;
    let (opening, rest) = (&line[..cut], line[cut..].trim_start());
    (rest.chars().count() >= CONTINUE_CHARS.0).then_some((opening, rest))
}

fn write_prompt(template: &str, topic: &str) -> Prompt {
    Prompt {
        kind: Kind::Write {
            topic: topic.to_string(),
        },
        text: template.replace("{}", topic),
    }
}

fn continue_prompt(opening: &str) -> Prompt {
    Prompt {
        kind: Kind::Continue {
            opening: opening.to_string(),
        },
        text: format!("Continue: {opening}"),
    }
}

/// Builds the task from the corpus `text` (deterministic in `text` and `cfg`).
pub fn build(text: &str, cfg: &TaskConfig) -> Result<Task> {
    let bad = |what: String| Err(Error::Data { what });
    let mut cut = text.len() * 9 / 10;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let (train_lines, held_lines) = (usable_lines(&text[..cut]), usable_lines(&text[cut..]));
    // lines containing each topic, per part
    let by_topic = |lines: &[&str]| -> HashMap<&'static str, Vec<usize>> {
        let mut m: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for (i, l) in lines.iter().enumerate() {
            for w in words(l) {
                if let Some(&t) = TOPICS.iter().find(|&&t| t == w) {
                    let e = m.entry(t).or_default();
                    if e.last() != Some(&i) {
                        e.push(i);
                    }
                }
            }
        }
        m
    };
    let (train_topic, held_topic) = (by_topic(&train_lines), by_topic(&held_lines));
    let topics: Vec<&str> = TOPICS
        .iter()
        .copied()
        .filter(|t| {
            train_topic.get(t).map_or(0, Vec::len) >= 2
                && held_topic.get(t).map_or(0, Vec::len) >= 1
        })
        .collect();
    if topics.len() < 4 || train_lines.len() < 100 || held_lines.len() < cfg.heldout_prompts {
        return bad(format!(
            "the corpus is too small for the alignment task: {} usable training lines, {} held-out \
             lines and {} topics with enough lines (needs 100, {} and 4)",
            train_lines.len(),
            held_lines.len(),
            topics.len(),
            cfg.heldout_prompts
        ));
    }

    let mut rng = Rng::new(cfg.seed);
    let mut pairs: Vec<(&str, &str)> = WRITE_TEMPLATES
        .iter()
        .flat_map(|&tpl| topics.iter().map(move |&t| (tpl, t)))
        .collect();
    shuffle(&mut pairs, &mut rng);
    let n_held_write = pairs.len() / 4;
    let (held_write, train_write) = pairs.split_at(n_held_write);

    let mut heldout = Vec::with_capacity(cfg.heldout_prompts.max(n_held_write));
    for &(tpl, topic) in held_write {
        let lines = &held_topic[topic];
        let answer = held_lines[lines[rng.below(lines.len())]].to_string();
        heldout.push(Example {
            prompt: write_prompt(tpl, topic),
            answer,
        });
    }
    let train_openings: HashSet<&str> = train_lines
        .iter()
        .flat_map(|l| [split_opening(l, 2), split_opening(l, 3)])
        .flatten()
        .map(|(o, _)| o)
        .collect();
    let mut order: Vec<usize> = (0..held_lines.len()).collect();
    shuffle(&mut order, &mut rng);
    let mut seen = HashSet::new();
    for i in order {
        if heldout.len() >= cfg.heldout_prompts {
            break;
        }
        let k = 2 + rng.below(2);
        let Some((opening, rest)) = split_opening(held_lines[i], k) else {
            continue;
        };
        if train_openings.contains(opening) || !seen.insert(opening) {
            continue;
        }
        heldout.push(Example {
            prompt: continue_prompt(opening),
            answer: rest.to_string(),
        });
    }
    if heldout.len() < cfg.heldout_prompts {
        return bad(format!(
            "only {} distinct held-out prompts, {} asked",
            heldout.len(),
            cfg.heldout_prompts
        ));
    }

    let mut train = Vec::with_capacity(cfg.train_examples);
    while train.len() < cfg.train_examples {
        if rng.below(2) == 0 {
            let (tpl, topic) = train_write[rng.below(train_write.len())];
            let lines = &train_topic[topic];
            let answer = train_lines[lines[rng.below(lines.len())]].to_string();
            train.push(Example {
                prompt: write_prompt(tpl, topic),
                answer,
            });
        } else {
            let line = train_lines[rng.below(train_lines.len())];
            let Some((opening, rest)) = split_opening(line, 2 + rng.below(2)) else {
                continue;
            };
            train.push(Example {
                prompt: continue_prompt(opening),
                answer: rest.to_string(),
            });
        }
    }

    let mut counts: HashMap<String, u32> = HashMap::new();
    for l in &train_lines {
        for w in words(l) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let known = counts
        .into_iter()
        .filter(|&(_, c)| c >= 2)
        .map(|(w, _)| w)
        .collect();
    Ok(Task {
        train,
        heldout,
        labeler: Labeler { known },
    })
}

/// Fisher–Yates with the crate's generator.
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// The programmatic preference: see the module documentation.
#[derive(Debug, Clone)]
pub struct Labeler {
    /// Words seen at least twice among the training lines.
    known: HashSet<String>,
}

/// The parts of a [`Labeler`] score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub on_task: f64,
    pub tone: f64,
    pub form: f64,
    pub words: f64,
}

impl Score {
    pub fn total(&self) -> f64 {
        self.on_task + self.tone + self.form + self.words
    }
}

impl Labeler {
    /// The score of `answer` to `prompt` (higher is better); see the module documentation.
    pub fn score(&self, prompt: &Prompt, answer: &str) -> Score {
        let trimmed = answer.trim();
        let ws = words(trimmed);
        let on_task = match &prompt.kind {
            Kind::Write { topic } => ws.iter().any(|w| w == topic),
            Kind::Continue { opening } => !trimmed
                .to_ascii_lowercase()
                .starts_with(&opening.to_ascii_lowercase()),
        };
        let pos = ws.iter().filter(|w| POSITIVE.contains(&w.as_str())).count() as f64;
        let grim = ws.iter().filter(|w| GRIM.contains(&w.as_str())).count() as f64;
        let (lo, hi) = match prompt.kind {
            Kind::Write { .. } => WRITE_CHARS,
            Kind::Continue { .. } => CONTINUE_CHARS,
        };
        let n = trimmed.chars().count();
        let form = !answer.contains('\n')
            && (lo..=hi).contains(&n)
            && trimmed.ends_with(|c: char| c.is_ascii_alphabetic() || ".,;:!?'".contains(c));
        let words = if ws.is_empty() {
            0.0
        } else {
            ws.iter().filter(|w| self.known.contains(*w)).count() as f64 / ws.len() as f64
        };
        Score {
            on_task: on_task as u8 as f64,
            tone: (pos - grim).clamp(-1.0, 1.0),
            form: form as u8 as f64,
            words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labeler() -> Labeler {
        Labeler {
            known: [
                "the", "sweet", "night", "is", "dark", "and", "full", "of", "death",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    #[test]
    fn labeler_prefers_topic_tone_and_form() {
        let l = labeler();
        let p = write_prompt(WRITE_TEMPLATES[0], "night");
        let good = l.score(&p, "The night is sweet and full of love,");
        assert_eq!(good.on_task, 1.0);
        assert_eq!(good.tone, 1.0);
        assert_eq!(good.form, 1.0);
        let grim = l.score(&p, "The night is dark and full of death.");
        assert_eq!(grim.tone, -1.0);
        let off = l.score(&p, "The day is sweet and full of love, so");
        assert_eq!(off.on_task, 0.0);
        let two_lines = l.score(&p, "The night is sweet\nand full of love");
        assert_eq!(two_lines.form, 0.0);
        let soup = l.score(&p, "Qxv zzkp night wrrf bbbt kkkkkkk");
        assert!(soup.words < 0.5 && good.words > 0.7);
        assert!(good.total() > grim.total() && good.total() > off.total());
    }

    #[test]
    fn openings_split_on_words() {
        assert_eq!(
            split_opening("Now is the winter of our discontent", 2),
            Some(("Now is", "the winter of our discontent"))
        );
        assert_eq!(split_opening("Now is the end", 3), None);
        let c = continue_prompt("Now is");
        assert!(labeler().score(&c, "Now is the winter").on_task == 0.0);
    }
}
