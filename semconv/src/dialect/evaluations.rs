//! OpenInference evaluation results, which sit on the judged span as indexed attributes:
//! `evaluations.<i>.evaluation.name` / `.score`, and the same under
//! `annotations.<i>.annotation.`. (GenAI's `gen_ai.evaluation.result` events are read from the
//! span's events by the collector.)

use std::collections::BTreeMap;

use super::{AttrValue, Attribute};
use crate::attr::openinference;

/// `(name, score)` of each complete indexed evaluation or annotation, in index order.
pub fn indexed_evaluations<'a, A: Attribute<'a>>(
    attributes: impl IntoIterator<Item = A>,
) -> Vec<(&'a str, f64)> {
    let families = [
        (
            openinference::EVALUATIONS_PREFIX,
            openinference::EVALUATION_NAME_SUFFIX,
            openinference::EVALUATION_SCORE_SUFFIX,
        ),
        (
            openinference::ANNOTATIONS_PREFIX,
            openinference::ANNOTATION_NAME_SUFFIX,
            openinference::ANNOTATION_SCORE_SUFFIX,
        ),
    ];
    // (family, index) → (name, score); ordered by family, then index.
    type Partial<'a> = (Option<&'a str>, Option<f64>);
    let mut found: BTreeMap<(usize, u32), Partial<'a>> = BTreeMap::new();
    for attribute in attributes {
        let key = attribute.key();
        for (family, (prefix, name_suffix, score_suffix)) in families.iter().enumerate() {
            // Nearly every key is neither: its first byte says so without comparing the rest.
            if key.first() != prefix.as_bytes().first() {
                continue;
            }
            let Some(rest) = key.strip_prefix(prefix.as_bytes()) else { continue };
            let (index, is_name) = if let Some(index) = rest.strip_suffix(name_suffix.as_bytes()) {
                (index, true)
            } else if let Some(index) = rest.strip_suffix(score_suffix.as_bytes()) {
                (index, false)
            } else {
                continue;
            };
            let Some(index) = std::str::from_utf8(index).ok().and_then(|index| index.parse::<u32>().ok())
            else {
                continue;
            };
            let (name, score) = found.entry((family, index)).or_default();
            match (is_name, attribute.value()) {
                (true, AttrValue::Str(text)) => *name = Some(text),
                (false, AttrValue::Double(number)) if number.is_finite() => *score = Some(number),
                (false, AttrValue::Int(number)) => *score = Some(number as f64),
                _ => {}
            }
        }
    }
    found.into_values().filter_map(|(name, score)| Some((name?, score?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_indexed_evaluations_and_annotations() {
        let attributes = [
            ("evaluations.1.evaluation.score", AttrValue::Int(1)),
            ("evaluations.0.evaluation.name", AttrValue::Str("relevance")),
            ("evaluations.0.evaluation.score", AttrValue::Double(0.75)),
            ("evaluations.1.evaluation.name", AttrValue::Str("toxicity")),
            ("evaluations.2.evaluation.name", AttrValue::Str("no score")),
            ("annotations.0.annotation.name", AttrValue::Str("thumbs")),
            ("annotations.0.annotation.score", AttrValue::Double(1.0)),
            ("evaluations.x.evaluation.score", AttrValue::Double(0.1)),
            ("llm.model_name", AttrValue::Str("m")),
        ];
        let evaluations = indexed_evaluations(attributes);
        assert_eq!(evaluations, vec![("relevance", 0.75), ("toxicity", 1.0), ("thumbs", 1.0)]);
    }
}
