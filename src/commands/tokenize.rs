//! `ingot tokenize` and `ingot detokenize`.

use super::{load_model, open};
use crate::{DetokenizeArgs, TokenizeArgs};
use anyhow::{bail, Context, Result};

pub fn run_tokenize(a: &TokenizeArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let ids = model
        .tokenizer
        .encode(&a.text, !a.no_special, !a.no_parse_special);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

pub fn run_detokenize(a: &DetokenizeArgs) -> Result<()> {
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let ids = parse_ids(&a.ids)?;
    let n_vocab = model.tokenizer.n_vocab();
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
        bail!("token id {bad} is outside the vocabulary of {n_vocab}");
    }
    println!("{}", model.tokenizer.decode(&ids, true));
    Ok(())
}

/// Ids given as separate arguments, comma/space separated, or a JSON array.
fn parse_ids(args: &[String]) -> Result<Vec<u32>> {
    let joined = args.join(" ");
    let trimmed = joined.trim().trim_start_matches('[').trim_end_matches(']');
    trimmed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("`{s}` is not a token id"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn ids_in_every_accepted_form() {
        let want = vec![1, 22, 333];
        assert_eq!(
            parse_ids(&["1".into(), "22".into(), "333".into()]).unwrap(),
            want
        );
        assert_eq!(parse_ids(&["[1,22, 333]".into()]).unwrap(), want);
        assert!(parse_ids(&["1".into(), "x".into()]).is_err());
        assert!(parse_ids(&["-1".into()]).is_err());
    }
}
