//! The messages of a trace request, each read field by field into its type of `wire.rs`.

use bytes::Bytes;

use super::{utf8, utf8_value, Fault, Reader};
use crate::wire::{
    any_value, span, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, Resource,
    ResourceSpans, ScopeSpans, Span, Status,
};

impl Reader<'_> {
    pub(super) fn resource_spans(&mut self, message: &mut ResourceSpans, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    self.resource(message.resource.get_or_insert_with(Default::default), inner, inner_depth);
                }
                2 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    message.scope_spans.push(ScopeSpans::default());
                    if let Some(scope_spans) = message.scope_spans.last_mut() {
                        self.scope_spans(scope_spans, inner, inner_depth);
                    }
                }
                3 => message.schema_url = self.bytes(wire, end),
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
                3 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    message.entity_refs.push(EntityRef::default());
                    if let Some(entity) = message.entity_refs.last_mut() {
                        self.entity_ref(entity, inner, inner_depth);
                    }
                }
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    fn entity_ref(&mut self, message: &mut EntityRef, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => message.schema_url = self.bytes(wire, end),
                2 => message.r#type = self.bytes(wire, end),
                3 => message.id_keys.push(self.bytes(wire, end)),
                4 => message.description_keys.push(self.bytes(wire, end)),
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
        message.spans.reserve_exact(spans);
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    self.scope(message.scope.get_or_insert_with(Default::default), inner, inner_depth);
                }
                2 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    message.spans.push(Span::default());
                    if let Some(span) = message.spans.last_mut() {
                        self.span(span, inner, inner_depth);
                    }
                }
                3 => message.schema_url = self.bytes(wire, end),
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
                1 => message.name = self.bytes(wire, end),
                2 => message.version = self.bytes(wire, end),
                3 => self.key_value_into(&mut message.attributes, wire, end, depth),
                4 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                _ => self.skip(wire, tag, end, depth),
            }
        }
    }

    fn span(&mut self, message: &mut Span, end: usize, depth: u32) {
        let [attributes, events, links] = self.count(end, [9, 11, 13]);
        message.attributes.reserve_exact(attributes);
        message.events.reserve_exact(events);
        message.links.reserve_exact(links);
        while self.at < end {
            let (tag, wire) = self.key(end);
            match tag {
                1 => message.trace_id = self.bytes(wire, end),
                2 => message.span_id = self.bytes(wire, end),
                3 => message.trace_state = self.bytes(wire, end),
                4 => message.parent_span_id = self.bytes(wire, end),
                5 => message.name = self.bytes(wire, end),
                6 => message.kind = self.uint(wire, end) as i32,
                7 => message.start_time_unix_nano = self.fixed64(wire, end),
                8 => message.end_time_unix_nano = self.fixed64(wire, end),
                9 => self.key_value_into(&mut message.attributes, wire, end, depth),
                10 => message.dropped_attributes_count = self.uint(wire, end) as u32,
                11 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    message.events.push(span::Event::default());
                    if let Some(event) = message.events.last_mut() {
                        self.event(event, inner, inner_depth);
                    }
                }
                12 => message.dropped_events_count = self.uint(wire, end) as u32,
                13 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    message.links.push(span::Link::default());
                    if let Some(link) = message.links.last_mut() {
                        self.link(link, inner, inner_depth);
                    }
                }
                14 => message.dropped_links_count = self.uint(wire, end) as u32,
                15 => {
                    let (inner, inner_depth) = self.nested(wire, end, depth);
                    self.status(message.status.get_or_insert_with(Default::default), inner, inner_depth);
                }
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
                2 => message.name = self.bytes(wire, end),
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
                1 => message.trace_id = self.bytes(wire, end),
                2 => message.span_id = self.bytes(wire, end),
                3 => message.trace_state = self.bytes(wire, end),
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
                2 => message.message = self.bytes(wire, end),
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
        let (inner, inner_depth) = self.nested(wire, end, depth);
        // Read in its place in the list: built aside, it was copied in after its last write.
        list.push(KeyValue::default());
        let Some(key_value) = list.last_mut() else { return };
        while self.at < inner {
            let (tag, field_wire) = self.key(inner);
            match tag {
                1 => key_value.key = self.bytes(field_wire, inner),
                2 => {
                    let (value_end, value_depth) = self.nested(field_wire, inner, inner_depth);
                    let value = key_value.value.get_or_insert_with(Default::default);
                    self.any_value(value, value_end, value_depth);
                }
                3 => key_value.key_strindex = self.uint(field_wire, inner) as i32,
                _ => self.skip(field_wire, tag, inner, inner_depth),
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
                    while self.at < inner {
                        let (field, field_wire) = self.key(inner);
                        match field {
                            1 => self.key_value_in(&mut map.values, field_wire, inner, inner_depth),
                            _ => self.skip(field_wire, field, inner, inner_depth),
                        }
                    }
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

    fn array(&mut self, message: &mut ArrayValue, end: usize, depth: u32) {
        while self.at < end {
            let (tag, wire) = self.key(end);
            if tag != 1 {
                self.skip(wire, tag, end, depth);
                continue;
            }
            let (inner, inner_depth) = self.nested(wire, end, depth);
            message.values.push(AnyValue::default());
            let Some(value) = message.values.last_mut() else { return };
            self.any_value(value, inner, inner_depth);
        }
    }
}
