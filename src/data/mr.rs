//! The MR movie-review sentences (Pang & Lee's polarity snippets, the source corpus of SST-2),
//! from the vaderSentiment sdist: 10,605 lines `id \t mean rating \t sentence`, CRLF, no header.
//! Ids 1–5331 are positive reviews, the rest negative. There is no official split; ours is a
//! seeded shuffle.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::Error;
use crate::assets::{Asset, Cache};

/// Ids up to this one are positive.
const LAST_POSITIVE_ID: u32 = 5331;

/// Sentences with binary labels (1 = positive).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelledSentences {
    /// The sentences.
    pub sentences: Vec<String>,
    /// Their labels.
    pub labels: Vec<usize>,
}

impl LabelledSentences {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    /// The first `n` sentences (all if fewer).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            sentences: self.sentences[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// Parses the MR file's text.
pub fn parse(text: &str) -> Result<LabelledSentences, Error> {
    let mut out = LabelledSentences::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, '\t');
        let (Some(id), Some(_rating), Some(sentence)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(Error::Parse {
                line: i + 1,
                reason: "expected three tab-separated fields".into(),
            });
        };
        let id: u32 = id.trim().parse().map_err(|_| Error::Parse {
            line: i + 1,
            reason: format!("id '{id}' is not a number"),
        })?;
        out.sentences.push(sentence.trim().to_string());
        out.labels.push(usize::from(id <= LAST_POSITIVE_ID));
    }
    Ok(out)
}

/// Loads MR from the cache (verifying its hash) and splits it: a seeded shuffle, then the
/// first `test_fraction` for test. Returns (train, test).
pub fn load(
    cache: &Cache,
    seed: u64,
    test_fraction: f64,
) -> Result<(LabelledSentences, LabelledSentences), Error> {
    cache.verify(Asset::MovieReviews)?;
    let path = cache.movie_reviews();
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })?;
    let all = parse(&text)?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_test = ((all.len() as f64) * test_fraction).round() as usize;
    let pick = |idx: &[usize]| LabelledSentences {
        sentences: idx.iter().map(|&i| all.sentences[i].clone()).collect(),
        labels: idx.iter().map(|&i| all.labels[i]).collect(),
    };
    Ok((pick(&order[n_test..]), pick(&order[..n_test])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_into_polarity_and_rejects_malformed_lines() {
        let text = "1\t2.3\tA fine film.\r\n5332\t-1.5\tDull.\r\n";
        let s = parse(text).unwrap();
        assert_eq!(s.sentences, vec!["A fine film.", "Dull."]);
        assert_eq!(s.labels, vec![1, 0]);
        assert!(matches!(
            parse("12\tno sentence"),
            Err(Error::Parse { line: 1, .. })
        ));
    }
}
