//! Walks an encoded protobuf message by the fields that hold other messages, adding up a weight
//! for each one it meets, without decoding: the spans of a trace request (a weight of 1 on each
//! span), or what a logs request's lists would take in memory (`logs::decode`).

use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};

/// A message, by the fields that hold other messages: each field's number, its weight (for
/// each time it occurs), and the message it holds.
pub struct Shape(pub &'static [(u32, usize, &'static Shape)]);

/// A field whose contents are not walked: a message whose fields do not matter, or a string.
pub static LEAF: Shape = Shape(&[]);

/// Deeper than prost goes (its recursion limit is 100): whatever prost would decode is walked
/// whole, and a message deeper than this prost refuses anyway.
const DEPTH: u32 = 128;

/// The weights of every field `shape` names in `message`, down through the messages they hold;
/// the other fields are stepped over. `None` when `message` is not a message prost would read
/// (one of those fields not length-delimited, a length past the end, too deep).
pub fn weigh(message: &[u8], shape: &Shape) -> Option<usize> {
    weigh_within(message, shape, DEPTH)
}

fn weigh_within(message: &[u8], shape: &Shape, depth: u32) -> Option<usize> {
    let mut buf = message;
    let mut total = 0usize;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).ok()?;
        let Some((_, weight, inner)) = shape.0.iter().find(|(number, ..)| *number == tag) else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
            continue;
        };
        if wire_type != WireType::LengthDelimited || depth == 0 {
            return None;
        }
        let length =
            usize::try_from(decode_varint(&mut buf).ok()?).ok().filter(|length| *length <= buf.len())?;
        let (field, rest) = buf.split_at(length);
        total = total.saturating_add(*weight);
        // A leaf (a span being counted, a string) is stepped over whole: its bytes are not a
        // message of this walk's, and may not be a message at all.
        if !inner.0.is_empty() {
            total = total.saturating_add(weigh_within(field, inner, depth - 1)?);
        }
        buf = rest;
    }
    Some(total)
}
