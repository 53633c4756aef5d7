//! The rewrite core that every pass uses.
//!
//! A [`Rewrite`] holds the input module as a list of raw sections. A pass
//! replaces, removes or inserts the sections it changes, encoding them with
//! `wasm-encoder` (its `reencode` module for anything it re-encodes from the
//! parsed input); every other section is copied byte for byte, header
//! included, so names, DWARF and producers sections survive untouched.
//!
//! [`Rewrite::finish`] assembles the module and validates it with wasmparser;
//! an invalid result is an [`Error::Internal`], never an output file. When no
//! section was touched, `finish` returns the input bytes unchanged.
//!
//! The input must be a module that validates with [`crate::input::features`]
//! (every caller validates its input first). `finish` relies on that in one
//! case: when the pass changed only the data section (and custom sections),
//! every function body is byte-identical to the input's in a byte-identical
//! context, so the output's module-level sections and data segments are
//! validated in full and the bodies are not validated a second time. This
//! halves the validation work of `pack`, whose output otherwise differs only
//! in its data section.
//!
//! Large data sections: a pass that rebuilds the data section from payloads
//! it mostly borrows from the input builds a [`DataSegments`] and hands it
//! to [`Rewrite::replace_data`]; `finish` encodes it straight into the output,
//! so each payload byte is copied once (not into a section buffer, then an
//! encoded section, then the module).
//!
//! Data-segment names: a pass that renumbers data segments calls
//! [`Rewrite::remap_data_names`], which re-encodes only the data-names
//! subsection of the `name` section and copies every other subsection as is.

use crate::error::{Error, Result};
use crate::sections::{self, ids, RawSection};
use std::borrow::Cow;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ConstExpr, Encode, Section};
use wasmparser::{BinaryReader, WasmFeatures};

/// What becomes of one slot of the output.
#[derive(Debug)]
enum Slot<'a> {
    /// Copy input section `n` as is.
    Keep(usize),
    /// Encoded section bytes (id, size, payload).
    Encoded { id: u8, bytes: Vec<u8> },
    /// A data section encoded by `finish` straight into the output.
    Data(DataSegments<'a>),
    /// Dropped.
    Removed,
}

impl Slot<'_> {
    /// The id of a section the pass wrote.
    fn written_id(&self) -> Option<u8> {
        match self {
            Slot::Encoded { id, .. } => Some(*id),
            Slot::Data(_) => Some(ids::DATA),
            Slot::Keep(_) | Slot::Removed => None,
        }
    }
}

/// A data section under construction whose segment payloads may borrow the
/// input. It encodes exactly as `wasm_encoder::DataSection` does (the test
/// `data_segments_encode_like_wasm_encoder` compares the bytes); unlike it,
/// it keeps payloads by reference until [`Rewrite::finish`] writes them into
/// the output, and knows its encoded size up front.
#[derive(Debug, Default)]
pub struct DataSegments<'a> {
    /// Per segment: the bytes before the payload (flags, memory index,
    /// offset expression, payload length), then the payload. An
    /// already-encoded segment has an empty head.
    segments: Vec<(Vec<u8>, Cow<'a, [u8]>)>,
    /// Sum of head and payload lengths.
    content_len: usize,
}

impl<'a> DataSegments<'a> {
    /// An empty data section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of segments added.
    pub fn len(&self) -> u32 {
        self.segments.len() as u32
    }

    /// `true` when no segment was added.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn push(&mut self, head: Vec<u8>, data: Cow<'a, [u8]>) -> &mut Self {
        self.content_len += head.len() + data.len();
        self.segments.push((head, data));
        self
    }

    /// An active segment of `memory` at `offset`.
    pub fn active(&mut self, memory: u32, offset: &ConstExpr, data: Cow<'a, [u8]>) -> &mut Self {
        // The segment flags of the binary format, as `wasm_encoder::DataSection`
        // writes them: 0 = active in memory 0, 2 = active with a memory index.
        let mut head = Vec::new();
        if memory == 0 {
            head.push(0x00);
        } else {
            head.push(0x02);
            memory.encode(&mut head);
        }
        offset.encode(&mut head);
        data.len().encode(&mut head);
        self.push(head, data)
    }

    /// A passive segment.
    pub fn passive(&mut self, data: Cow<'a, [u8]>) -> &mut Self {
        let mut head = vec![0x01]; // flags: passive
        data.len().encode(&mut head);
        self.push(head, data)
    }

    /// An already-encoded segment, copied as is.
    pub fn raw(&mut self, encoded_segment: &'a [u8]) -> &mut Self {
        self.push(Vec::new(), Cow::Borrowed(encoded_segment))
    }

    /// Encoded size of the section contents after the section size (the
    /// segment count and the segments).
    fn contents_len(&self) -> usize {
        leb_len(self.segments.len()) + self.content_len
    }

    /// Encoded size of the whole section: id, size, contents.
    pub fn encoded_len(&self) -> usize {
        let contents = self.contents_len();
        1 + leb_len(contents) + contents
    }
}

/// Length of `n` as an unsigned LEB128, measured with wasm-encoder's encoder.
fn leb_len(n: usize) -> usize {
    let mut bytes = Vec::with_capacity(5);
    n.encode(&mut bytes);
    bytes.len()
}

impl Encode for DataSegments<'_> {
    fn encode(&self, sink: &mut Vec<u8>) {
        sink.reserve(self.contents_len() + 5);
        self.contents_len().encode(sink);
        self.segments.len().encode(sink);
        for (head, data) in &self.segments {
            sink.extend_from_slice(head);
            sink.extend_from_slice(data);
        }
    }
}

impl Section for DataSegments<'_> {
    fn id(&self) -> u8 {
        ids::DATA
    }
}

/// A module being rewritten.
#[derive(Debug)]
pub struct Rewrite<'a> {
    input: &'a [u8],
    sections: Vec<RawSection>,
    slots: Vec<Slot<'a>>,
    /// Where each input section sits in `slots`.
    section_slot: Vec<usize>,
    changed: bool,
}

/// Canonical position of known sections (the binary format's order).
fn order_of(id: u8) -> Option<u8> {
    Some(match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => return None,
    })
}

fn encode(section: &impl Section) -> (u8, Vec<u8>) {
    let mut bytes = Vec::new();
    section.append_to(&mut bytes);
    (section.id(), bytes)
}

impl<'a> Rewrite<'a> {
    /// Split `input` (a core module) into its sections.
    pub fn new(input: &'a [u8]) -> Result<Self> {
        let sections = sections::split(input)?;
        let slots = (0..sections.len()).map(Slot::Keep).collect();
        let section_slot = (0..sections.len()).collect();
        Ok(Rewrite {
            input,
            sections,
            slots,
            section_slot,
            changed: false,
        })
    }

    /// The input module.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// The input's sections, in order.
    pub fn sections(&self) -> &[RawSection] {
        &self.sections
    }

    /// Index (into [`Rewrite::sections`]) of the known section with that id.
    pub fn find(&self, id: u8) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| s.id == id && s.custom_name.is_none())
    }

    /// Index of the first custom section with that name.
    pub fn find_custom(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| s.custom_name.as_deref() == Some(name))
    }

    /// Payload bytes of input section `index`.
    pub fn payload(&self, index: usize) -> &'a [u8] {
        &self.input[self.sections[index].payload.clone()]
    }

    /// A binary reader over the payload of input section `index`, with
    /// offsets relative to the start of the input.
    pub fn reader(&self, index: usize) -> BinaryReader<'a> {
        let range = self.sections[index].payload.clone();
        BinaryReader::new_features(
            &self.input[range.clone()],
            range.start,
            crate::input::features(),
        )
    }

    fn slot_of(&self, index: usize) -> usize {
        self.section_slot[index]
    }

    /// Replace input section `index` with an encoded section.
    pub fn replace(&mut self, index: usize, section: &impl Section) {
        let slot = self.slot_of(index);
        let (id, bytes) = encode(section);
        self.slots[slot] = Slot::Encoded { id, bytes };
        self.changed = true;
    }

    /// Replace input section `index` (the data section) with `section`,
    /// encoded by [`Rewrite::finish`] straight into the output.
    pub fn replace_data(&mut self, index: usize, section: DataSegments<'a>) {
        let slot = self.slot_of(index);
        self.slots[slot] = Slot::Data(section);
        self.changed = true;
    }

    /// Drop input section `index` from the output.
    pub fn remove(&mut self, index: usize) {
        let slot = self.slot_of(index);
        self.slots[slot] = Slot::Removed;
        self.changed = true;
    }

    /// Set the known section `section.id()`: replace it if the input has one,
    /// otherwise insert it at its canonical position.
    pub fn set(&mut self, section: &impl Section) {
        let id = section.id();
        if let Some(index) = self.find(id) {
            self.replace(index, section);
            return;
        }
        let order = order_of(id).expect("set() is for known sections");
        // Insert before the first known section that comes later in order.
        let position = self
            .slots
            .iter()
            .position(|slot| {
                let slot_id = match slot {
                    Slot::Keep(i) if self.sections[*i].custom_name.is_none() => {
                        Some(self.sections[*i].id)
                    }
                    Slot::Encoded { id, .. } if *id != ids::CUSTOM => Some(*id),
                    Slot::Data(_) => Some(ids::DATA),
                    _ => None,
                };
                slot_id.and_then(order_of).is_some_and(|o| o > order)
            })
            .unwrap_or(self.slots.len());
        let (id, bytes) = encode(section);
        self.slots.insert(position, Slot::Encoded { id, bytes });
        for slot in &mut self.section_slot {
            if *slot >= position {
                *slot += 1;
            }
        }
        self.changed = true;
    }

    /// `true` once any section was replaced, removed or inserted.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Re-encode the data-segment names of the `name` section through `map`
    /// (old segment index to new index, `None` to drop the name). Every other
    /// subsection is copied byte for byte; nothing happens when the module has
    /// no data names.
    pub fn remap_data_names(&mut self, map: impl Fn(u32) -> Option<u32>) -> Result<()> {
        let Some(index) = self.find_custom("name") else {
            return Ok(());
        };
        let payload_range = self.sections[index].payload.clone();
        let mut reader = BinaryReader::new(&self.input[payload_range.clone()], payload_range.start);
        // Skip the custom section's own name ("name").
        let err = |e: wasmparser::BinaryReaderError| Error::from_parser(self.input, &e);
        reader.read_string().map_err(err)?;
        let mut section = wasm_encoder::NameSection::new();
        let mut touched = false;
        while !reader.eof() {
            let id = reader.read_u8().map_err(err)?;
            let size = reader.read_var_u32().map_err(err)? as usize;
            let start = reader.original_position();
            let data = reader.read_bytes(size).map_err(err)?;
            if id != 9 {
                section.raw(id, data);
                continue;
            }
            touched = true;
            let map_reader =
                wasmparser::NameMap::new(BinaryReader::new(data, start)).map_err(err)?;
            let mut names = Vec::new();
            for naming in map_reader {
                let naming = naming.map_err(err)?;
                if let Some(new_index) = map(naming.index) {
                    names.push((new_index, naming.name));
                }
            }
            names.sort_by_key(|(i, _)| *i);
            names.dedup_by_key(|(i, _)| *i);
            let mut name_map = wasm_encoder::NameMap::new();
            for (i, name) in names {
                name_map.append(i, name);
            }
            section.data(&name_map);
        }
        if touched {
            self.replace(index, &section);
        }
        Ok(())
    }

    /// Assemble the output and validate it with `features`. Returns the input
    /// unchanged when nothing was touched.
    pub fn finish(self, features: WasmFeatures, pass: &str) -> Result<Vec<u8>> {
        if !self.changed {
            return Ok(self.input.to_vec());
        }
        let len = |slot: &Slot<'_>| match slot {
            Slot::Keep(i) => self.sections[*i].range.len(),
            Slot::Encoded { bytes, .. } => bytes.len(),
            Slot::Data(section) => section.encoded_len(),
            Slot::Removed => 0,
        };
        let total = 8 + self.slots.iter().map(len).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.input[..8]);
        for slot in &self.slots {
            match slot {
                Slot::Keep(i) => {
                    out.extend_from_slice(&self.input[self.sections[*i].range.clone()])
                }
                Slot::Encoded { bytes, .. } => out.extend_from_slice(bytes),
                Slot::Data(section) => section.append_to(&mut out),
                Slot::Removed => {}
            }
        }
        debug_assert_eq!(out.len(), total);
        let bodies = if features == crate::input::features() {
            self.bodies_to_validate()
        } else {
            crate::input::Bodies::Validate
        };
        crate::input::validate_output(&out, features, pass, bodies)?;
        Ok(out)
    }

    /// Which of the output's function bodies need validating again.
    ///
    /// When every known section other than the data and data count sections
    /// is copied from the input as is and in the same order (custom sections
    /// aside), function bodies are byte-identical in a byte-identical context
    /// (types, imports, functions, tables, memories, tags, globals, exports,
    /// start, elements), and validating a body is a function of exactly
    /// those bytes plus the data count: the data section takes no part. With
    /// the data count section kept too, every body is as valid as it was in
    /// the input ([`Bodies::AlreadyValid`]); with it rewritten, added or
    /// removed, only the bodies that may name a data segment can have
    /// changed validity ([`Bodies::DataUsers`]). Anything else:
    /// [`Bodies::Validate`].
    fn bodies_to_validate(&self) -> crate::input::Bodies {
        use crate::input::Bodies;
        let context = |id: u8| id != ids::CUSTOM && id != ids::DATA && id != ids::DATA_COUNT;
        let mut kept = Vec::new();
        let mut count_kept = true;
        for slot in &self.slots {
            match slot {
                Slot::Keep(i) => {
                    let section = &self.sections[*i];
                    if section.custom_name.is_none() && context(section.id) {
                        kept.push(*i);
                    }
                }
                slot @ (Slot::Encoded { .. } | Slot::Data(_)) => match slot.written_id() {
                    Some(ids::DATA_COUNT) => count_kept = false,
                    Some(id) if context(id) => return Bodies::Validate,
                    _ => {}
                },
                Slot::Removed => {}
            }
        }
        let input: Vec<usize> = (0..self.sections.len())
            .filter(|&i| self.sections[i].custom_name.is_none() && context(self.sections[i].id))
            .collect();
        if kept != input {
            return Bodies::Validate;
        }
        // A removed data count section is a change too.
        let count_removed = self
            .find(ids::DATA_COUNT)
            .is_some_and(|i| matches!(self.slots[self.slot_of(i)], Slot::Removed));
        if count_kept && !count_removed {
            Bodies::AlreadyValid
        } else {
            Bodies::DataUsers
        }
    }
}

/// Convert a parsed memory type to its encoder form.
pub fn memory_type(ty: wasmparser::MemoryType) -> wasm_encoder::MemoryType {
    RoundtripReencoder.memory_type(ty).expect("infallible")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`DataSegments`] must produce exactly the bytes `wasm_encoder::DataSection`
    /// produces, for every kind of segment and for lengths whose LEBs take
    /// one to three bytes.
    #[test]
    fn data_segments_encode_like_wasm_encoder() {
        let payloads: Vec<Vec<u8>> = [0usize, 1, 127, 128, 16_383, 16_384, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 + 1) as u8).collect())
            .collect();
        let exprs = [
            ConstExpr::i32_const(0),
            ConstExpr::i32_const(-1),
            ConstExpr::i64_const(1 << 40),
            ConstExpr::global_get(3)
                .with_i32_const(100_000)
                .with_i32_add(),
        ];
        let mut expected = wasm_encoder::DataSection::new();
        let mut ours = DataSegments::new();
        let raw: Vec<u8> = {
            let mut one = wasm_encoder::DataSection::new();
            one.active(1, &exprs[0], [9u8, 8, 7]);
            let mut bytes = Vec::new();
            one.encode(&mut bytes);
            bytes[2..].to_vec() // the segment after the section size and count
        };
        for (i, payload) in payloads.iter().enumerate() {
            let expr = &exprs[i % exprs.len()];
            for memory in [0, 1, 200] {
                expected.active(memory, expr, payload.iter().copied());
                ours.active(memory, expr, Cow::Borrowed(payload));
            }
            expected.passive(payload.iter().copied());
            ours.passive(Cow::Owned(payload.clone()));
            expected.raw(&raw);
            ours.raw(&raw);
        }
        let mut a = Vec::new();
        expected.append_to(&mut a);
        let mut b = Vec::new();
        ours.append_to(&mut b);
        assert_eq!(ours.len(), expected.len());
        assert_eq!(b.len(), ours.encoded_len());
        assert!(a == b, "encodings differ");
        let mut empty = Vec::new();
        DataSegments::new().append_to(&mut empty);
        let mut expected_empty = Vec::new();
        wasm_encoder::DataSection::new().append_to(&mut expected_empty);
        assert_eq!(empty, expected_empty);
    }

    fn module_with_data_users(users: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
                (type $bytes (array (mut i8)))
                (memory 1)
                (data $first "a")
                (data $second "b")
                (func (export "plain") (result i32) (i32.add (i32.const 1) (i32.const 2)))
                (func (export "user") {users}))"#
        ))
        .unwrap()
    }

    /// Rewrite `module` with one data segment and a data count of 1, the
    /// function bodies copied as they are.
    fn with_one_segment(module: &[u8]) -> Result<Vec<u8>> {
        let mut rewrite = Rewrite::new(module)?;
        let data = rewrite.find(ids::DATA).unwrap();
        let mut section = DataSegments::new();
        section.passive(Cow::Borrowed(b"a"));
        rewrite.replace_data(data, section);
        rewrite.set(&wasm_encoder::DataCountSection { count: 1 });
        assert_eq!(
            rewrite.bodies_to_validate(),
            crate::input::Bodies::DataUsers
        );
        rewrite.finish(crate::input::features(), "test")
    }

    /// With only the data and data count sections rewritten, the bodies that
    /// name a data segment are validated again: every instruction that does
    /// (`memory.init`, `data.drop`, `array.new_data`, `array.init_data`) is
    /// caught naming a segment the new count no longer has.
    #[test]
    fn bodies_naming_data_are_validated_against_a_new_data_count() {
        let users = [
            "(memory.init $second (i32.const 0) (i32.const 0) (i32.const 1))",
            "(data.drop $second)",
            "(drop (array.new_data $bytes $second (i32.const 0) (i32.const 1)))",
            "(array.init_data $bytes $second (array.new_default $bytes (i32.const 1)) (i32.const 0) (i32.const 0) (i32.const 1))",
        ];
        for user in users {
            let module = module_with_data_users(user);
            crate::input::validate(&module).unwrap();
            match with_one_segment(&module) {
                Err(Error::Internal(message)) => {
                    assert!(message.contains("data"), "{user}: {message}")
                }
                other => panic!("{user}: {:?}", other.map(|_| "a module")),
            }
            // Naming segment 0 only, the same rewrite is valid.
            let fine = module_with_data_users(&user.replace("$second", "$first"));
            with_one_segment(&fine).unwrap_or_else(|e| panic!("{user}: {e}"));
        }
    }

    /// Which bodies `finish` validates: none when only the data section
    /// changed, the data users when the data count changed too, all when
    /// another section of their context changed.
    #[test]
    fn bodies_to_validate_follows_what_changed() {
        use crate::input::Bodies;
        let module = module_with_data_users("(data.drop $first)");
        let mut rewrite = Rewrite::new(&module).unwrap();
        assert_eq!(rewrite.bodies_to_validate(), Bodies::AlreadyValid);
        let data = rewrite.find(ids::DATA).unwrap();
        rewrite.replace_data(data, DataSegments::new());
        assert_eq!(rewrite.bodies_to_validate(), Bodies::AlreadyValid);
        let count = rewrite.find(ids::DATA_COUNT).unwrap();
        rewrite.remove(count);
        assert_eq!(rewrite.bodies_to_validate(), Bodies::DataUsers);
        let mut rewrite = Rewrite::new(&module).unwrap();
        let mut memories = wasm_encoder::MemorySection::new();
        memories.memory(wasm_encoder::MemoryType {
            minimum: 2,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        rewrite.set(&memories);
        assert_eq!(rewrite.bodies_to_validate(), Bodies::Validate);
    }
}
