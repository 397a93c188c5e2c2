//! The trace request read from its protobuf bytes in one pass, into the pipeline's types of
//! `wire.rs`: what prost's derived decoder builds from the same bytes, and accepts and refuses
//! what it does (the tests compare the two on every fixture and on damaged copies of them).
//!
//! Why not prost's decoder: it reads every field through generic code, grows each repeated
//! field one push at a time (a span's 20 attributes move three times, a request's 512 spans
//! eight times), and the UTF-8 check of the strings was a second pass over a request larger
//! than the core's cache. Here each message with many repeated fields counts them first and
//! takes its vectors at their size, and each string is checked as soon as its value is final:
//! when the element of a repeated field that holds it is complete (an element is never merged
//! into again, while a singular message field can be), or for an attribute's lists and maps,
//! when the attribute is. A fault is kept in the reader rather
//! than returned by every read: a read's result then fits in registers, and the first fault
//! moves the reader past every end, so that each loop stops.

use bytes::Bytes;

use crate::wire::{any_value, AnyValue, ExportTraceServiceRequest, ResourceSpans};

/// How deep messages may nest, counted as prost counts it (the request itself not counted).
const RECURSION_LIMIT: u32 = 100;

/// Most bytes of decoded messages a request may take per byte of its body. A message costs
/// far more decoded than encoded when it is nearly empty: an empty span is 2 bytes on the
/// wire and 312 in memory, so a 16 MiB body of them took 2.6 GB. Real requests take under 5
/// (the fixtures 1 to 2.9, the message with every field set 4.7); an attribute with a
/// one-letter key and a small integer takes 9.
pub const DECODED_BYTES_PER_BYTE: usize = 16;

/// A body this small may always decode (a 64 KiB body of empty spans stays under 10 MiB).
const DECODED_BYTES_FLOOR: usize = 10 << 20;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Why a body is not a request: the first fault the reader met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("invalid varint")]
    Varint,
    #[error("invalid key value")]
    Key,
    #[error("invalid wire type value")]
    WireTypeValue,
    #[error("invalid tag value: 0")]
    Tag,
    #[error("invalid wire type")]
    WireType,
    #[error("buffer underflow")]
    Underflow,
    #[error("recursion limit reached")]
    Recursion,
    #[error("unexpected end group tag")]
    EndGroup,
    #[error("a string field is not valid UTF-8")]
    Utf8,
    #[error("the request would take more than {DECODED_BYTES_PER_BYTE} bytes decoded per byte received")]
    Amplified,
}

/// Decodes `body`; strings and bytes are views into it.
pub fn request(body: &Bytes) -> Result<ExportTraceServiceRequest, Fault> {
    let mut reader = Reader { body, data: body, at: 0, fault: None, budget: decoded_budget(body.len()) };
    let mut request = ExportTraceServiceRequest::default();
    let end = body.len();
    while reader.at < end {
        let (tag, wire) = reader.key(end);
        match tag {
            1 => {
                let (inner, depth) = reader.nested(wire, end, RECURSION_LIMIT);
                let mut resource_spans = ResourceSpans::default();
                reader.grow(&request.resource_spans);
                reader.resource_spans(&mut resource_spans, inner, depth);
                request.resource_spans.push(resource_spans);
            }
            _ => reader.skip(wire, tag, end, RECURSION_LIMIT),
        }
    }
    match reader.fault {
        Some(fault) => Err(fault),
        None => Ok(request),
    }
}

/// The most bytes a body of `length` bytes may take decoded.
pub fn decoded_budget(length: usize) -> usize {
    length.saturating_mul(DECODED_BYTES_PER_BYTE).max(DECODED_BYTES_FLOOR)
}

/// ASCII first: nearly every key and value is, and for short strings `is_ascii` (a few words
/// at a time, inlined) costs a fraction of the full check, which is left for the others.
pub(super) fn utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// Whether a value's strings are UTF-8, those of its lists and maps included.
pub(super) fn utf8_value(value: &AnyValue) -> bool {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => utf8(text),
        Some(any_value::Value::ArrayValue(array)) => array.values.iter().all(utf8_value),
        Some(any_value::Value::KvlistValue(map)) => {
            map.values.iter().all(|entry| utf8(&entry.key) && entry.value.as_ref().is_none_or(utf8_value))
        }
        _ => true,
    }
}

struct Reader<'b> {
    body: &'b Bytes,
    data: &'b [u8],
    at: usize,
    /// The first fault met; the reader is then past every end.
    fault: Option<Fault>,
    /// Bytes of decoded messages the request may still take ([`DECODED_BYTES_PER_BYTE`]).
    budget: usize,
}

impl Reader<'_> {
    #[cold]
    fn fail(&mut self, fault: Fault) {
        self.fault.get_or_insert(fault);
        self.at = usize::MAX;
    }

    /// Takes `bytes` out of the budget before they are allocated; false, and a fault
    /// ([`Fault::Amplified`]), when they do not fit.
    #[inline(always)]
    fn spend(&mut self, bytes: usize) -> bool {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.fail(Fault::Amplified);
                false
            }
        }
    }

    /// Charges the room a push onto `list` allocates: none while the vector has room (its
    /// size was taken when it was reserved), else what it grows by (doubling, from 4).
    #[inline(always)]
    fn grow<T>(&mut self, list: &Vec<T>) {
        if list.len() == list.capacity() {
            self.spend(list.capacity().max(4).saturating_mul(std::mem::size_of::<T>()));
        }
    }

    /// Fails with [`Fault::Utf8`] unless every one of `strings` is UTF-8.
    fn check(&mut self, strings: &[&[u8]]) {
        if !strings.iter().all(|text| utf8(text)) {
            self.fail(Fault::Utf8);
        }
    }

    /// One byte nearly always (tags, lengths under 128, small numbers): that case inline, the
    /// others in [`Self::long_varint`].
    #[inline(always)]
    fn varint(&mut self, end: usize) -> u64 {
        match self.data.get(self.at) {
            Some(&byte) if byte < 0x80 && self.at < end => {
                self.at += 1;
                u64::from(byte)
            }
            _ => self.long_varint(end),
        }
    }

    #[inline(never)]
    fn long_varint(&mut self, end: usize) -> u64 {
        let bytes = self.data.get(self.at..end).unwrap_or_default();
        let mut value = 0;
        for (index, &byte) in bytes.iter().take(10).enumerate() {
            // The tenth byte holds the 64th bit and no more.
            if index == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.at += index + 1;
                return value;
            }
        }
        self.fail(Fault::Varint);
        0
    }

    /// A field's number and wire type; 0 after a fault.
    #[inline(always)]
    fn key(&mut self, end: usize) -> (u32, u8) {
        let key = self.varint(end);
        let Ok(key) = u32::try_from(key) else {
            self.fail(Fault::Key);
            return (0, 0);
        };
        let wire = (key & 0x07) as u8;
        if wire > FIXED32 {
            self.fail(Fault::WireTypeValue);
        } else if key >> 3 == 0 {
            self.fail(Fault::Tag);
        }
        (key >> 3, wire)
    }

    /// Whether `wire` is the wire type expected; a fault if not.
    #[inline(always)]
    fn expect(&mut self, wire: u8, expected: u8) -> bool {
        if wire != expected {
            self.fail(Fault::WireType);
        }
        wire == expected
    }

    /// The length of a length-delimited field, if it is within `end`.
    #[inline(always)]
    fn length(&mut self, end: usize) -> Option<usize> {
        let length = self.varint(end);
        match end.checked_sub(self.at) {
            Some(room) if length <= room as u64 && self.fault.is_none() => Some(length as usize),
            _ => {
                self.fail(Fault::Underflow);
                None
            }
        }
    }

    /// The next `length` bytes, stepped over.
    #[inline(always)]
    fn take(&mut self, length: usize, end: usize) -> &[u8] {
        match self.data.get(self.at..end).and_then(|rest| rest.get(..length)) {
            Some(taken) => {
                self.at += length;
                taken
            }
            None => {
                self.fail(Fault::Underflow);
                &[]
            }
        }
    }

    /// Reads a bytes or string field into `field`. What the field held is dropped only when
    /// it is not empty: the decoder's empty values (a field's default, an empty string read)
    /// are all the static empty `Bytes`, whose drop is a call through its vtable that does
    /// nothing, and every string a request holds would make that call once more.
    #[inline(always)]
    fn bytes_into(&mut self, field: &mut Bytes, wire: u8, end: usize) {
        let held = std::mem::replace(field, self.bytes(wire, end));
        if held.is_empty() {
            std::mem::forget(held);
        }
    }

    #[inline(always)]
    fn bytes(&mut self, wire: u8, end: usize) -> Bytes {
        if !self.expect(wire, DELIMITED) {
            return Bytes::new();
        }
        let Some(length) = self.length(end) else { return Bytes::new() };
        let start = self.at;
        self.at += length;
        self.body.slice(start..self.at)
    }

    #[inline(always)]
    fn uint(&mut self, wire: u8, end: usize) -> u64 {
        if !self.expect(wire, VARINT) {
            return 0;
        }
        self.varint(end)
    }

    #[inline(always)]
    fn fixed64(&mut self, wire: u8, end: usize) -> u64 {
        if !self.expect(wire, FIXED64) {
            return 0;
        }
        u64::from_le_bytes(self.take(8, end).try_into().unwrap_or_default())
    }

    #[inline(always)]
    fn fixed32(&mut self, wire: u8, end: usize) -> u32 {
        if !self.expect(wire, FIXED32) {
            return 0;
        }
        u32::from_le_bytes(self.take(4, end).try_into().unwrap_or_default())
    }

    /// A nested message's end, the reader at its start, and the depth its own fields are read
    /// at. After a fault the end is the reader's place, so the message reads as empty.
    #[inline(always)]
    fn nested(&mut self, wire: u8, end: usize, depth: u32) -> (usize, u32) {
        if !self.expect(wire, DELIMITED) {
            return (self.at, 0);
        }
        if depth == 0 {
            self.fail(Fault::Recursion);
            return (self.at, 0);
        }
        match self.length(end) {
            Some(length) => (self.at + length, depth - 1),
            None => (self.at, 0),
        }
    }

    /// Steps over a field no message here has, as prost does (groups included).
    fn skip(&mut self, wire: u8, tag: u32, end: usize, depth: u32) {
        if depth == 0 {
            return self.fail(Fault::Recursion);
        }
        if wire != START_GROUP {
            return self.step_over(wire, end);
        }
        while self.fault.is_none() {
            let (inner_tag, inner_wire) = self.key(end);
            if inner_wire == END_GROUP {
                if inner_tag != tag {
                    self.fail(Fault::EndGroup);
                }
                return;
            }
            self.skip(inner_wire, inner_tag, end, depth - 1);
        }
    }

    /// Steps over a field that is not a group.
    #[inline(always)]
    fn step_over(&mut self, wire: u8, end: usize) {
        match wire {
            VARINT => drop(self.varint(end)),
            FIXED64 => drop(self.take(8, end)),
            FIXED32 => drop(self.take(4, end)),
            DELIMITED => {
                if let Some(length) = self.length(end) {
                    self.at += length;
                }
            }
            _ => self.fail(Fault::EndGroup),
        }
    }

    /// How many fields numbered `tags` the message before `end` has, for the vectors' sizes;
    /// a fault stops the count (the read that follows reports it).
    fn count<const N: usize>(&self, end: usize, tags: [u32; N]) -> [usize; N] {
        let mut probe = Reader { body: self.body, data: self.data, at: self.at, fault: None, budget: 0 };
        let mut counts = [0; N];
        while probe.at < end {
            let (tag, wire) = probe.key(end);
            if let Some(index) = tags.iter().position(|wanted| *wanted == tag) {
                counts[index] += 1;
            }
            probe.step_over(wire, end);
        }
        counts
    }
}

mod messages;

#[cfg(test)]
mod tests;
