//! The messages of a trace request, each read field by field into its type of `wire.rs`.

use std::mem::size_of;

use bytes::Bytes;

use super::{utf8, utf8_value, Fault, Reader};
use crate::wire::{
    any_value, span, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, Resource,
    ResourceSpans, ScopeSpans, Span, Status,
};

impl Reader<'_> {
    /// Reads one element of a repeated message field with `read`, in its place at the end of
    /// `list` (built aside, an element was copied in right after its last write, and waited on
    /// it).
    #[inline(always)]
    fn element<T: Default>(
        &mut self,
        list: &mut Vec<T>,
        wire: u8,
        end: usize,
        depth: u32,
        read: impl FnOnce(&mut Self, &mut T, usize, u32),
    ) {
        let (inner, inner_depth) = self.nested(wire, end, depth);
        self.grow(list);
        list.push(T::default());
        if let Some(element) = list.last_mut() {
            read(self, element, inner, inner_depth);
        }
    }

    /// Reads a singular message field with `read`, into what an earlier one of the same number
    /// left (prost merges them).
    #[inline(always)]
    fn merged<T: Default>(
        &mut self,
        field: &mut Option<T>,
        wire: u8,
        end: usize,
        depth: u32,
        read: impl FnOnce(&mut Self, &mut T, usize, u32),
    ) {
        let (inner, inner_depth) = self.nested(wire, end, depth);
        read(self, field.get_or_insert_with(T::default), inner, inner_depth);
    }

    pub(super) fn resource_spans(&mut self, message: &mut ResourceSpans, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.merged(&mut message.resource, wire, end, depth, Self::resource),
                2 => self.element(&mut message.scope_spans, wire, end, depth, Self::scope_spans),
                3 => self.bytes_into(&mut message.schema_url, wire, end),
                _ => self.skip(wire, tag, end, depth),
            }
        }
        self.check(&[&message.schema_url]);
    }

    fn resource(&mut self, message: &mut Resource, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.key_value_into(&mut message.attributes, wire, end, depth),
                2 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                3 => self.element(&mut message.entity_refs, wire, end, depth, Self::entity_ref),
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    fn entity_ref(&mut self, message: &mut EntityRef, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.bytes_into(&mut message.schema_url, wire, end),
                2 => self.bytes_into(&mut message.r#type, wire, end),
                3 => {
                    self.grow(&message.id_keys);
                    message.id_keys.push(self.bytes(wire, end));
                }
                4 => {
                    self.grow(&message.description_keys);
                    message.description_keys.push(self.bytes(wire, end));
                }
                _ => self.skip(wire, tag, end, depth),
            }
        }
        self.check(&[&message.schema_url, &message.r#type]);
        if !message.id_keys.iter().chain(&message.description_keys).all(|key| utf8(key)) {
            self.fail(Fault::Utf8);
        }
    }

    fn scope_spans(&mut self, message: &mut ScopeSpans, end: usize, depth: u32) {
        let [spans] = self.count(end, [2]);
        if self.spend(spans.saturating_mul(size_of::<Span>())) {
            message.spans.reserve_exact(spans);
        }
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.merged(&mut message.scope, wire, end, depth, Self::scope),
                2 => self.element(&mut message.spans, wire, end, depth, Self::span),
                3 => self.bytes_into(&mut message.schema_url, wire, end),
                _ => self.skip(wire, tag, end, depth),
            }
        }
        let empty = Bytes::new();
        let scope = message.scope.as_ref();
        let (name, version) = scope.map_or((&empty, &empty), |scope| (&scope.name, &scope.version));
        self.check(&[&message.schema_url, name, version]);
    }

    fn scope(&mut self, message: &mut InstrumentationScope, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.bytes_into(&mut message.name, wire, end),
                2 => self.bytes_into(&mut message.version, wire, end),
                3 => self.key_value_into(&mut message.attributes, wire, end, depth),
                4 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    fn span(&mut self, message: &mut Span, end: usize, depth: u32) {
        let [attributes, events, links] = self.count(end, [9, 11, 13]);
        let bytes = [
            attributes.saturating_mul(size_of::<KeyValue>()),
            events.saturating_mul(size_of::<span::Event>()),
            links.saturating_mul(size_of::<span::Link>()),
        ];
        // Taken together: each alone within the budget could still be three times it.
        if self.spend(bytes.iter().fold(0, |sum, bytes| sum.saturating_add(*bytes))) {
            message.attributes.reserve_exact(attributes);
            message.events.reserve_exact(events);
            message.links.reserve_exact(links);
        }
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.bytes_into(&mut message.trace_id, wire, end),
                2 => self.bytes_into(&mut message.span_id, wire, end),
                3 => self.bytes_into(&mut message.trace_state, wire, end),
                4 => self.bytes_into(&mut message.parent_span_id, wire, end),
                5 => self.bytes_into(&mut message.name, wire, end),
                6 => message.kind = self.uint(wire, end) as i32,
                7 => message.start_time_unix_nano = self.fixed64(wire, end),
                8 => message.end_time_unix_nano = self.fixed64(wire, end),
                9 => self.key_value_into(&mut message.attributes, wire, end, depth),
                10 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                11 => self.element(&mut message.events, wire, end, depth, Self::event),
                12 => message.dropped_events_count = self.uint(wire, end) as u32,
                13 => self.element(&mut message.links, wire, end, depth, Self::link),
                14 => message.dropped_links_count = self.uint(wire, end) as u32,
                15 => self.merged(&mut message.status, wire, end, depth, Self::status),
                16 => message.flags = self.fixed32(wire, end),
                _ => self.skip(wire, tag, end, depth),
            }
        }
        let empty = Bytes::new();
        let status = message.status.as_ref().map_or(&empty, |status| &status.message);
        self.check(&[&message.trace_state, &message.name, status]);
    }

    fn event(&mut self, message: &mut span::Event, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => message.time_unix_nano = self.fixed64(wire, end),
                2 => self.bytes_into(&mut message.name, wire, end),
                3 => self.key_value_into(&mut message.attributes, wire, end, depth),
                4 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                _ => self.skip(wire, tag, end, depth),
            }
        }
        self.check(&[&message.name]);
    }

    fn link(&mut self, message: &mut span::Link, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.bytes_into(&mut message.trace_id, wire, end),
                2 => self.bytes_into(&mut message.span_id, wire, end),
                3 => self.bytes_into(&mut message.trace_state, wire, end),
                4 => self.key_value_into(&mut message.attributes, wire, end, depth),
                5 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                6 => message.flags = self.fixed32(wire, end),
                _ => self.skip(wire, tag, end, depth),
            }
        }
        self.check(&[&message.trace_state]);
    }

    fn status(&mut self, message: &mut Status, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                2 => self.bytes_into(&mut message.message, wire, end),
                3 => message.code = self.uint(wire, end) as i32,
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    /// Reads one element of a repeated `KeyValue` field into `list`, and checks its strings.
    fn key_value_into(&mut self, list: &mut Vec<KeyValue>, wire: u8, end: usize, depth: u32) {
        self.key_value_in(list, wire, end, depth);
        // Its value is final, lists and maps inside it included (an `AnyValue` met again in
        // an entry of a map could still replace a list read before it).
        let Some(key_value) = list.last() else { return };
        if !utf8(&key_value.key) || !key_value.value.as_ref().is_none_or(utf8_value) {
            self.fail(Fault::Utf8);
        }
    }

    /// Reads one element of a repeated `KeyValue` field into `list`, its strings unchecked.
    fn key_value_in(&mut self, list: &mut Vec<KeyValue>, wire: u8, end: usize, depth: u32) {
        self.element(list, wire, end, depth, Self::key_value);
    }

    fn key_value(&mut self, message: &mut KeyValue, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.bytes_into(&mut message.key, wire, end),
                2 => self.merged(&mut message.value, wire, end, depth, Self::any_value),
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    /// Reads an `AnyValue`: the last of its one-of fields wins, and a list or map met again
    /// is merged into, as prost does.
    fn any_value(&mut self, message: &mut AnyValue, end: usize, depth: u32) {
        use any_value::Value;
        while self.at < end {
            let (tag, wire) = self.key(end);
            let value = match tag {
                1 => Value::StringValue(self.bytes(wire, end)),
                2 => Value::BoolValue(self.uint(wire, end) != 0),
                3 => Value::IntValue(self.uint(wire, end) as i64),
                4 => Value::DoubleValue(f64::from_bits(self.fixed64(wire, end))),
                5 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    let mut array = match message.value.take() {
                        Some(Value::ArrayValue(array)) => array,
                        _ => ArrayValue::default(),
                    };
                    self.array(&mut array, inner, inner_depth);
                    Value::ArrayValue(array)
                }
                6 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    let mut map = match message.value.take() {
                        Some(Value::KvlistValue(map)) => map,
                        _ => KeyValueList::default(),
                    };
                    self.map(&mut map, inner, inner_depth);
                    Value::KvlistValue(map)
                }
                7 => Value::BytesValue(self.bytes(wire, end)),
                8 => Value::StringValueStrindex(self.uint(wire, end) as i32),
                _ => {
                    self.skip(wire, tag, end, depth);
                    continue;
                }
            };
            message.value = Some(value);
        }
    }

    fn map(&mut self, message: &mut KeyValueList, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.key_value_in(&mut message.values, wire, end, depth),
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    fn array(&mut self, message: &mut ArrayValue, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => self.element(&mut message.values, wire, end, depth, Self::any_value),
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }
}
