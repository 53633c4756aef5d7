//! Splitting a core module into its raw sections, and naming the section that
//! holds a given byte offset (for error messages).
//!
//! Sections are kept as byte ranges of the input so that the rewrite core can
//! copy every section a pass does not touch byte for byte, header included.

use crate::error::{Error, Location, Result};
use std::ops::Range;
use wasmparser::{BinaryReader, Chunk, Encoding, Parser, Payload};

/// One section of a core module, as it sits in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    /// Section id (0 for custom sections).
    pub id: u8,
    /// The whole section: id byte, size field and payload.
    pub range: Range<usize>,
    /// The payload only.
    pub payload: Range<usize>,
    /// Name of a custom section.
    pub custom_name: Option<String>,
}

impl RawSection {
    /// Human-readable name, e.g. `data section` or `custom section "name"`.
    pub fn describe(&self) -> String {
        match &self.custom_name {
            Some(name) => format!("custom section {name:?}"),
            None => section_name(self.id).to_string(),
        }
    }
}

/// Name of a known section id.
pub fn section_name(id: u8) -> &'static str {
    match id {
        0 => "custom section",
        1 => "type section",
        2 => "import section",
        3 => "function section",
        4 => "table section",
        5 => "memory section",
        6 => "global section",
        7 => "export section",
        8 => "start section",
        9 => "element section",
        10 => "code section",
        11 => "data section",
        12 => "data count section",
        13 => "tag section",
        _ => "unknown section",
    }
}

/// Section ids, for readability at call sites.
pub mod ids {
    /// Custom section.
    pub const CUSTOM: u8 = 0;
    /// Type section.
    pub const TYPE: u8 = 1;
    /// Import section.
    pub const IMPORT: u8 = 2;
    /// Function section.
    pub const FUNCTION: u8 = 3;
    /// Table section.
    pub const TABLE: u8 = 4;
    /// Memory section.
    pub const MEMORY: u8 = 5;
    /// Global section.
    pub const GLOBAL: u8 = 6;
    /// Export section.
    pub const EXPORT: u8 = 7;
    /// Start section.
    pub const START: u8 = 8;
    /// Element section.
    pub const ELEMENT: u8 = 9;
    /// Code section.
    pub const CODE: u8 = 10;
    /// Data section.
    pub const DATA: u8 = 11;
    /// Data count section.
    pub const DATA_COUNT: u8 = 12;
    /// Tag section.
    pub const TAG: u8 = 13;
}

/// Check the preamble: a core module, not a component or something else.
pub fn check_preamble(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::Invalid {
            message: "not a WebAssembly binary (missing \\0asm magic) and not WebAssembly text"
                .into(),
            location: Location {
                section: "module header".into(),
                offset: 0,
            },
        });
    }
    match Parser::new(0).parse(bytes, true) {
        Ok(Chunk::Parsed {
            payload:
                Payload::Version {
                    encoding: Encoding::Module,
                    ..
                },
            ..
        }) => Ok(()),
        Ok(Chunk::Parsed {
            payload:
                Payload::Version {
                    encoding: Encoding::Component,
                    ..
                },
            ..
        }) => Err(Error::Refused(
            "the input is a WebAssembly component; wasm-mem works on core modules".into(),
        )),
        Ok(_) => Err(Error::Invalid {
            message: "unexpected module header".into(),
            location: Location {
                section: "module header".into(),
                offset: 0,
            },
        }),
        Err(e) => Err(Error::from_parser(bytes, &e)),
    }
}

/// Split a core module into its sections, in order.
///
/// Only the section framing is checked here; section contents are read by the
/// model and the validator.
pub fn split(bytes: &[u8]) -> Result<Vec<RawSection>> {
    check_preamble(bytes)?;
    let mut sections = Vec::new();
    let mut parser = Parser::new(0);
    let mut pos = 0usize;
    let mut prev_end = 8usize;
    loop {
        let chunk = parser
            .parse(&bytes[pos..], true)
            .map_err(|e| Error::from_parser(bytes, &e))?;
        let (consumed, payload) = match chunk {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => {
                return Err(Error::Invalid {
                    message: "unexpected end of input".into(),
                    location: locate(bytes, bytes.len()),
                })
            }
        };
        pos += consumed;
        match payload {
            Payload::End(_) => break,
            Payload::Version { .. } => {}
            Payload::CodeSectionStart { range, .. } => {
                // The streaming parser reports the code section from its
                // header alone: its declared size may run past the input.
                if range.end > bytes.len() {
                    return Err(Error::Invalid {
                        message: format!(
                            "section size mismatch: the code section claims {} bytes, {} remain",
                            range.end - range.start,
                            bytes.len().saturating_sub(range.start)
                        ),
                        location: locate(bytes, range.start),
                    });
                }
                sections.push(RawSection {
                    id: ids::CODE,
                    range: prev_end..range.end,
                    payload: range.clone(),
                    custom_name: None,
                });
                prev_end = range.end;
                parser.skip_section();
                pos = range.end;
            }
            Payload::CustomSection(reader) => {
                let range = reader.range();
                sections.push(RawSection {
                    id: ids::CUSTOM,
                    range: prev_end..range.end,
                    payload: range.clone(),
                    custom_name: Some(reader.name().to_string()),
                });
                prev_end = range.end;
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    sections.push(RawSection {
                        id,
                        range: prev_end..range.end,
                        payload: range.clone(),
                        custom_name: None,
                    });
                    prev_end = range.end;
                }
            }
        }
    }
    Ok(sections)
}

/// Name the section that holds byte `offset` of a core module.
///
/// Walks the section headers only, so it works on inputs that fail to parse
/// further on.
pub fn locate(bytes: &[u8], offset: usize) -> Location {
    let at = |section: String| Location { section, offset };
    if offset < 8 {
        return at("module header".into());
    }
    let mut reader = BinaryReader::new(bytes, 0);
    if reader.read_bytes(8).is_err() {
        return at("module header".into());
    }
    loop {
        let start = reader.original_position();
        if reader.eof() {
            return at("end of input".into());
        }
        let Ok(id) = reader.read_u8() else {
            return at("section header".into());
        };
        let size = match reader.read_var_u32() {
            Ok(size) => size as usize,
            Err(_) => {
                return at(format!(
                    "header of {} starting at {start}",
                    section_name(id)
                ))
            }
        };
        let payload_start = reader.original_position();
        let end = payload_start.saturating_add(size);
        if offset < payload_start {
            return at(format!("header of {}", section_name(id)));
        }
        // An error at the very end of the input belongs to the last section
        // (e.g. a segment whose length runs past it).
        if offset < end || end >= bytes.len() {
            if id == ids::CUSTOM {
                let mut name_reader = BinaryReader::new(&bytes[payload_start..], payload_start);
                if let Ok(name) = name_reader.read_string() {
                    return at(format!("custom section {name:?}"));
                }
            }
            return at(section_name(id).to_string());
        }
        if reader.read_bytes(size).is_err() {
            return at(section_name(id).to_string());
        }
    }
}
