//! Splitting a batch that the endpoint says is too large into halves, each span kept under its
//! own resource and scope.

use crate::wire::raw::{ResourceSpans, ScopeSpans};

/// Splits a batch into two of about half the spans each, keeping each span under its own
/// resource and scope.
pub fn split_in_half(batch: Vec<ResourceSpans>, spans: usize) -> [(Vec<ResourceSpans>, usize); 2] {
    let wanted = spans / 2;
    let mut first: Vec<ResourceSpans> = Vec::new();
    let mut second: Vec<ResourceSpans> = Vec::new();
    let mut taken = 0;
    for mut resource_spans in batch {
        if taken >= wanted {
            second.push(resource_spans);
            continue;
        }
        let scopes = std::mem::take(&mut resource_spans.scope_spans);
        let mut kept = ResourceSpans { scope_spans: Vec::new(), ..resource_spans.clone() };
        let mut moved = ResourceSpans { scope_spans: Vec::new(), ..resource_spans };
        for mut scope_spans in scopes {
            let room = wanted - taken;
            if room == 0 {
                moved.scope_spans.push(scope_spans);
                continue;
            }
            if scope_spans.spans.len() <= room {
                taken += scope_spans.spans.len();
                kept.scope_spans.push(scope_spans);
                continue;
            }
            let rest = scope_spans.spans.split_off(room);
            taken += room;
            moved.scope_spans.push(ScopeSpans { spans: rest, ..scope_spans.clone() });
            kept.scope_spans.push(scope_spans);
        }
        if !kept.scope_spans.is_empty() {
            first.push(kept);
        }
        if !moved.scope_spans.is_empty() {
            second.push(moved);
        }
    }
    [(first, taken), (second, spans - taken)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use prost::Message;

    fn batch(shape: &[&[usize]]) -> (Vec<ResourceSpans>, usize) {
        let mut next = 0u8;
        let resource_spans = shape
            .iter()
            .map(|scopes| ResourceSpans {
                scope_spans: scopes
                    .iter()
                    .map(|count| ScopeSpans {
                        spans: (0..*count)
                            .map(|_| {
                                next += 1;
                                let span =
                                    crate::wire::Span { span_id: vec![next; 8].into(), ..Default::default() };
                                Bytes::from(span.encode_to_vec()).into()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        (resource_spans, shape.iter().flat_map(|scopes| scopes.iter()).sum())
    }

    fn ids(batch: &[ResourceSpans]) -> Vec<u8> {
        batch
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .flat_map(|scope_spans| &scope_spans.spans)
            .map(|span| crate::wire::Span::decode(span.to_bytes()).expect("a span").span_id[0])
            .collect()
    }

    #[test]
    fn splitting_keeps_every_span_once_under_its_resource_and_scope() {
        for shape in [&[&[4usize][..]][..], &[&[1, 2], &[3]], &[&[5], &[0, 2]], &[&[1], &[1], &[1]]] {
            let (whole, spans) = batch(shape);
            let [(first, first_count), (second, second_count)] = split_in_half(whole, spans);
            assert_eq!(first_count, spans / 2, "{shape:?}");
            assert_eq!(first_count + second_count, spans);
            let mut all = ids(&first);
            assert_eq!(all.len(), first_count);
            all.extend(ids(&second));
            assert_eq!(all, (1..=spans as u8).collect::<Vec<_>>(), "{shape:?}: order and completeness");
        }
    }
}
