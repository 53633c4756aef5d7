//! WebAssembly components: finding the core modules inside a component and
//! rebuilding the component around rewritten core modules.
//!
//! A component (the preamble's layer field is 1) nests its code: a *core
//! module section* (component section id 1) holds one whole core module, a
//! *component section* (id 4) holds one whole nested component, which may
//! nest further. Memories and data segments live only in the core modules,
//! so every wasm-mem pass works on a component by working on its core
//! modules one at a time.
//!
//! # Numbering
//!
//! Core modules are numbered 0, 1, 2, ... in depth-first order: the
//! sections of a component are visited in binary order, a core module
//! section takes the next number, and a nested component section is walked
//! (recursively) where it stands, so its core modules are numbered before
//! those that follow it in its parent. This is the order in which the core
//! modules appear in the file, and the order in which `wasm-tools` and
//! wasmparser's parser meet them. A module's *position* is the byte offset,
//! in the outermost input, of its first byte (the `\0asm` of its own
//! preamble); [`CoreModule::section_offset`] is where its section's id byte
//! sits.
//!
//! # Rebuilding
//!
//! [`Component::rebuild`] asks a function for the new bytes of each core
//! module and assembles the output: every byte outside a core module that
//! changed is copied from the input as it was (the component's own
//! preambles, types, imports, exports, canonical options, aliases, instances
//! and custom sections). A changed core module is written as a core module
//! section with a new size field (`wasm_encoder::RawSection` written with
//! `ComponentSection::append_to_component`, which encodes the size), and so
//! is each nested component section that holds one (its size field changes
//! because its contents did). Nothing is re-encoded by hand.
//!
//! # Refusals
//!
//! [`rewrite_modules`] runs a core-module pass on the selected modules. A
//! core module inside a component is instantiated by the component, which
//! supplies its imports and may use its exports (the canonical ABI's
//! `memory` and `realloc` options, other modules importing its memory or
//! table). A pass that would change the type of an import or an export
//! (memory64 <-> memory32, a table's index type, an export removed or added,
//! a function signature) is therefore refused, naming the module and the
//! export or import. Changed memory limits are allowed (raising a minimum is
//! always fine for the canonical ABI), and the final component is validated
//! with the component model enabled: when a limit change breaks an
//! instantiation (another module imports the memory with a larger minimum)
//! that is reported as a refusal naming the module, never written out.

use crate::error::{Error, Location, Result};
use serde::Serialize;
use std::ops::Range;
use wasm_encoder::{ComponentSection, RawSection};
use wasmparser::{
    BinaryReader, Chunk, CompositeInnerType, Encoding, ExternalKind, Parser, Payload, TypeRef,
    Validator,
};

/// Component section id of a core module section.
pub const CORE_MODULE_SECTION: u8 = 1;
/// Component section id of a (nested) component section.
pub const COMPONENT_SECTION: u8 = 4;

/// What a WebAssembly binary's preamble says it is, or `None` when the bytes
/// are not a WebAssembly binary (no magic, or too short).
pub fn encoding(bytes: &[u8]) -> Option<Encoding> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return None;
    }
    match Parser::new(0).parse(&bytes[..8], true) {
        Ok(Chunk::Parsed {
            payload: Payload::Version { encoding, .. },
            ..
        }) => Some(encoding),
        _ => None,
    }
}

/// `true` when `bytes` is a binary WebAssembly component (layer 1).
pub fn is_component(bytes: &[u8]) -> bool {
    encoding(bytes) == Some(Encoding::Component)
}

/// One core module inside a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreModule {
    /// Depth-first index (see the module documentation).
    pub index: u32,
    /// Byte offset of the module's first byte in the input.
    pub offset: usize,
    /// Size of the module in bytes.
    pub size: usize,
    /// Byte offset of its core module section (the id byte) in the input.
    pub section_offset: usize,
    /// How many components enclose it: 0 for a module of the outermost
    /// component, 1 inside a nested component, ...
    pub depth: u32,
}

impl CoreModule {
    /// The module's bytes within the input.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.size
    }

    /// How the module is named in messages.
    pub fn describe(&self) -> String {
        let nested = if self.depth > 0 {
            format!(", nested {} component(s) deep", self.depth)
        } else {
            String::new()
        };
        format!(
            "core module {} (at byte offset {}{nested})",
            self.index, self.offset
        )
    }
}

#[derive(Debug, Clone)]
enum Contents {
    Other,
    Module(usize),
    Component(Level),
}

#[derive(Debug, Clone)]
struct Section {
    /// Id byte, size field and payload.
    range: Range<usize>,
    contents: Contents,
}

#[derive(Debug, Clone)]
struct Level {
    /// The whole component, preamble included.
    range: Range<usize>,
    sections: Vec<Section>,
}

/// A parsed component: its section tree and its core modules.
#[derive(Debug, Clone)]
pub struct Component<'a> {
    input: &'a [u8],
    root: Level,
    modules: Vec<CoreModule>,
}

fn invalid(message: impl Into<String>, section: impl Into<String>, offset: usize) -> Error {
    Error::Invalid {
        message: message.into(),
        location: Location {
            section: section.into(),
            offset,
        },
    }
}

impl<'a> Component<'a> {
    /// Walk the sections of a binary component (recursively) and find its
    /// core modules. Only the section framing is checked here; validate the
    /// component for the rest.
    pub fn parse(input: &'a [u8]) -> Result<Component<'a>> {
        if !is_component(input) {
            return Err(Error::Refused(
                "the input is not a WebAssembly component".into(),
            ));
        }
        let mut modules = Vec::new();
        let root = parse_level(input, 0..input.len(), 0, &mut modules)?;
        Ok(Component {
            input,
            root,
            modules,
        })
    }

    /// The input bytes.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// Every core module, in depth-first order.
    pub fn modules(&self) -> &[CoreModule] {
        &self.modules
    }

    /// The bytes of a core module.
    pub fn module_bytes(&self, module: &CoreModule) -> &'a [u8] {
        &self.input[module.range()]
    }

    /// The core modules `selection` names: all of them for `None`, else the
    /// one with that index (an error naming the count when there is none).
    pub fn select(&self, selection: Option<u32>) -> Result<Vec<&CoreModule>> {
        match selection {
            None => Ok(self.modules.iter().collect()),
            Some(n) => match self.modules.get(n as usize) {
                Some(module) => Ok(vec![module]),
                None => Err(Error::Refused(format!(
                    "core module {n} does not exist: the component has {} core module(s), numbered from 0 in depth-first order",
                    self.modules.len()
                ))),
            },
        }
    }

    /// Rebuild the component, asking `rewrite` for each core module's new
    /// bytes (`None`: keep it). Modules are visited in index order. Every
    /// byte that does not belong to a changed core module, or to the size
    /// field of a section enclosing one, is copied from the input.
    pub fn rebuild(
        &self,
        mut rewrite: impl FnMut(&CoreModule, &'a [u8]) -> Result<Option<Vec<u8>>>,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.input.len());
        self.emit(&self.root, &mut rewrite, &mut out)?;
        Ok(out)
    }

    /// Write `level` (a whole component) to `out`; `true` when anything in
    /// it changed.
    fn emit(
        &self,
        level: &Level,
        rewrite: &mut impl FnMut(&CoreModule, &'a [u8]) -> Result<Option<Vec<u8>>>,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let mut changed = false;
        out.extend_from_slice(&self.input[level.range.start..level.range.start + 8]);
        for section in &level.sections {
            let original = &self.input[section.range.clone()];
            match &section.contents {
                Contents::Other => out.extend_from_slice(original),
                Contents::Module(i) => {
                    let module = &self.modules[*i];
                    let bytes = self.module_bytes(module);
                    match rewrite(module, bytes)? {
                        Some(new) if new.as_slice() != bytes => {
                            RawSection {
                                id: CORE_MODULE_SECTION,
                                data: &new,
                            }
                            .append_to_component(out);
                            changed = true;
                        }
                        _ => out.extend_from_slice(original),
                    }
                }
                Contents::Component(nested) => {
                    let mut inner = Vec::with_capacity(nested.range.len());
                    if self.emit(nested, rewrite, &mut inner)? {
                        RawSection {
                            id: COMPONENT_SECTION,
                            data: &inner,
                        }
                        .append_to_component(out);
                        changed = true;
                    } else {
                        out.extend_from_slice(original);
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Name the place of byte `offset` of the input: the core module and
    /// its section when the offset falls inside a core module, else the
    /// component.
    pub fn locate(&self, offset: usize) -> Location {
        match self.modules.iter().find(|m| m.range().contains(&offset)) {
            Some(module) => {
                let inner =
                    crate::sections::locate(self.module_bytes(module), offset - module.offset);
                Location {
                    section: format!("core module {}, {}", module.index, inner.section),
                    offset,
                }
            }
            None => Location {
                section: "component".into(),
                offset,
            },
        }
    }
}

fn parse_level(
    input: &[u8],
    range: Range<usize>,
    depth: u32,
    modules: &mut Vec<CoreModule>,
) -> Result<Level> {
    let bytes = &input[range.clone()];
    if encoding(bytes) != Some(Encoding::Component) {
        return Err(invalid(
            "a component section does not hold a component (bad preamble)",
            "component section",
            range.start,
        ));
    }
    let mut reader = BinaryReader::new(&bytes[8..], range.start + 8);
    let mut sections = Vec::new();
    while !reader.eof() {
        let start = reader.original_position();
        let header = |e: wasmparser::BinaryReaderError| {
            invalid(e.message(), "component section header", e.offset())
        };
        let id = reader.read_u8().map_err(header)?;
        let size = reader.read_var_u32().map_err(header)? as usize;
        let payload_start = reader.original_position();
        let payload = payload_start..payload_start + size;
        if payload.end > range.end {
            return Err(invalid(
                format!("section of {size} bytes runs past the end of the component"),
                "component section header",
                start,
            ));
        }
        reader
            .read_bytes(size)
            .map_err(|e| invalid(e.message(), "component section", e.offset()))?;
        let contents = match id {
            CORE_MODULE_SECTION => {
                if encoding(&input[payload.clone()]) != Some(Encoding::Module) {
                    return Err(invalid(
                        "a core module section does not hold a core module (bad preamble)",
                        "core module section",
                        payload.start,
                    ));
                }
                modules.push(CoreModule {
                    index: modules.len() as u32,
                    offset: payload.start,
                    size,
                    section_offset: start,
                    depth,
                });
                Contents::Module(modules.len() - 1)
            }
            COMPONENT_SECTION => {
                Contents::Component(parse_level(input, payload.clone(), depth + 1, modules)?)
            }
            _ => Contents::Other,
        };
        sections.push(Section {
            range: start..payload.end,
            contents,
        });
    }
    Ok(Level { range, sections })
}

/// Validate a component (component model on, and every core feature
/// wasm-mem accepts), naming the core module and section of a problem.
pub fn validate(bytes: &[u8]) -> Result<()> {
    Validator::new_with_features(crate::input::features())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| {
            let location = Component::parse(bytes).map_or_else(
                |_| Location {
                    section: "component".into(),
                    offset: e.offset(),
                },
                |c| c.locate(e.offset()),
            );
            Error::Invalid {
                message: e.message().to_string(),
                location,
            }
        })
}

/// Turn a pass's error on one core module into an error about the
/// component: offsets become offsets of the input, and the message names
/// the module.
pub fn in_module(error: Error, module: &CoreModule) -> Error {
    match error {
        Error::Invalid { message, location } => Error::Invalid {
            message,
            location: Location {
                section: format!("core module {}, {}", module.index, location.section),
                offset: module.offset + location.offset,
            },
        },
        Error::Refused(message) => Error::Refused(format!("{}: {message}", module.describe())),
        Error::Internal(message) => Error::Internal(format!("{}: {message}", module.describe())),
        other => other,
    }
}

/// The imports and exports of a core module, with their types in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `(module, name, type)` per import, in order.
    pub imports: Vec<(String, String, Entity)>,
    /// `(name, type)` per export, in order.
    pub exports: Vec<(String, Entity)>,
}

/// The type of an imported or exported item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// A memory.
    Memory(wasmparser::MemoryType),
    /// Anything else, described in words (functions by signature, so that
    /// renumbered types compare equal).
    Other(String),
}

impl Entity {
    fn describe(&self) -> String {
        match self {
            Entity::Memory(ty) => describe_memory(ty),
            Entity::Other(text) => text.clone(),
        }
    }

    /// `true` when `self` and `other` differ only in a memory's limits.
    fn same_but_limits(&self, other: &Entity) -> bool {
        match (self, other) {
            (Entity::Memory(a), Entity::Memory(b)) => {
                a.memory64 == b.memory64
                    && a.shared == b.shared
                    && a.page_size_log2 == b.page_size_log2
            }
            _ => false,
        }
    }
}

fn describe_memory(ty: &wasmparser::MemoryType) -> String {
    let mut text = format!("memory {}", if ty.memory64 { "i64" } else { "i32" });
    if ty.shared {
        text.push_str(" shared");
    }
    if let Some(log2) = ty.page_size_log2 {
        text.push_str(&format!(" page {}", 1u64 << log2));
    }
    match ty.maximum {
        Some(max) => text.push_str(&format!(" {}..{max} pages", ty.initial)),
        None => text.push_str(&format!(" {}.. pages", ty.initial)),
    }
    text
}

fn describe_table(ty: &wasmparser::TableType) -> String {
    let max = ty.maximum.map_or_else(String::new, |m| m.to_string());
    format!(
        "table {} {} {}..{max}",
        if ty.table64 { "i64" } else { "i32" },
        ty.element_type,
        ty.initial
    )
}

fn describe_global(ty: &wasmparser::GlobalType) -> String {
    format!(
        "global {}{}{}",
        if ty.shared { "shared " } else { "" },
        if ty.mutable { "mut " } else { "" },
        ty.content_type
    )
}

impl Interface {
    /// Read the imports and exports of a valid core module.
    pub fn read(module: &[u8]) -> Result<Interface> {
        let err = |e: wasmparser::BinaryReaderError| Error::from_parser(module, &e);
        let mut types: Vec<String> = Vec::new();
        let mut funcs: Vec<u32> = Vec::new();
        let mut tables = Vec::new();
        let mut memories = Vec::new();
        let mut globals = Vec::new();
        let mut tags: Vec<u32> = Vec::new();
        let mut imports = Vec::new();
        let mut exports = Vec::new();
        let func_type = |types: &[String], index: u32| {
            types
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| format!("type {index}"))
        };
        for payload in Parser::new(0).parse_all(module) {
            match payload.map_err(err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(err)?.into_types() {
                            types.push(match &sub.composite_type.inner {
                                CompositeInnerType::Func(f) => format!("func {f}"),
                                other => format!("{other:?}"),
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(err)?;
                        let entity = match import.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                funcs.push(t);
                                Entity::Other(func_type(&types, t))
                            }
                            TypeRef::Table(t) => {
                                tables.push(t);
                                Entity::Other(describe_table(&t))
                            }
                            TypeRef::Memory(m) => {
                                memories.push(m);
                                Entity::Memory(m)
                            }
                            TypeRef::Global(g) => {
                                globals.push(g);
                                Entity::Other(describe_global(&g))
                            }
                            TypeRef::Tag(t) => {
                                tags.push(t.func_type_idx);
                                Entity::Other(format!("tag {}", func_type(&types, t.func_type_idx)))
                            }
                        };
                        imports.push((import.module.to_string(), import.name.to_string(), entity));
                    }
                }
                Payload::FunctionSection(reader) => {
                    for t in reader {
                        funcs.push(t.map_err(err)?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        tables.push(table.map_err(err)?.ty);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        memories.push(memory.map_err(err)?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        globals.push(global.map_err(err)?.ty);
                    }
                }
                Payload::TagSection(reader) => {
                    for tag in reader {
                        tags.push(tag.map_err(err)?.func_type_idx);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(err)?;
                        let i = export.index as usize;
                        let missing = || format!("{:?} {i}", export.kind);
                        let entity = match export.kind {
                            ExternalKind::Func | ExternalKind::FuncExact => Entity::Other(
                                funcs.get(i).map_or_else(missing, |t| func_type(&types, *t)),
                            ),
                            ExternalKind::Table => {
                                Entity::Other(tables.get(i).map_or_else(missing, describe_table))
                            }
                            ExternalKind::Memory => memories
                                .get(i)
                                .map_or_else(|| Entity::Other(missing()), |m| Entity::Memory(*m)),
                            ExternalKind::Global => {
                                Entity::Other(globals.get(i).map_or_else(missing, describe_global))
                            }
                            ExternalKind::Tag => {
                                Entity::Other(tags.get(i).map_or_else(missing, |t| {
                                    format!("tag {}", func_type(&types, *t))
                                }))
                            }
                        };
                        exports.push((export.name.to_string(), entity));
                    }
                    // Exports are the last section the interface needs.
                    break;
                }
                Payload::CodeSectionStart { .. } | Payload::DataSection(_) => break,
                _ => {}
            }
        }
        Ok(Interface { imports, exports })
    }

    /// How `after` differs from `self`: `(breaking, limits)`, each a list of
    /// descriptions. Breaking changes are changed types, added or removed
    /// items; `limits` are memories whose limits alone changed.
    pub fn diff(&self, after: &Interface) -> (Vec<String>, Vec<String>) {
        let mut breaking = Vec::new();
        let mut limits = Vec::new();
        let mut compare =
            |what: String, before: Option<&Entity>, now: Option<&Entity>| match (before, now) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) if a.same_but_limits(b) => {
                    limits.push(format!("{what}: {} -> {}", a.describe(), b.describe()))
                }
                (Some(a), Some(b)) => {
                    breaking.push(format!("{what}: {} -> {}", a.describe(), b.describe()))
                }
                (Some(a), None) => breaking.push(format!("{what} ({}) removed", a.describe())),
                (None, Some(b)) => breaking.push(format!("{what} ({}) added", b.describe())),
                (None, None) => {}
            };
        for (module, name, entity) in &self.imports {
            let now = after
                .imports
                .iter()
                .find(|(m, n, _)| m == module && n == name)
                .map(|(_, _, e)| e);
            compare(format!("import {module:?} {name:?}"), Some(entity), now);
        }
        for (module, name, entity) in &after.imports {
            if !self
                .imports
                .iter()
                .any(|(m, n, _)| m == module && n == name)
            {
                compare(format!("import {module:?} {name:?}"), None, Some(entity));
            }
        }
        for (name, entity) in &self.exports {
            let now = after
                .exports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e);
            compare(format!("export {name:?}"), Some(entity), now);
        }
        for (name, entity) in &after.exports {
            if !self.exports.iter().any(|(n, _)| n == name) {
                compare(format!("export {name:?}"), None, Some(entity));
            }
        }
        (breaking, limits)
    }
}

/// What a pass did to one core module of a component.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleReport<R> {
    /// Depth-first index of the core module.
    pub index: u32,
    /// Byte offset of the module in the input.
    pub offset: usize,
    /// Nesting depth (0: in the outermost component).
    pub depth: u32,
    /// Module size before the pass.
    pub size_before: usize,
    /// Module size after the pass.
    pub size_after: usize,
    /// The pass's own report for this module.
    pub report: R,
}

/// Run a core-module pass on the selected core modules of a component
/// (`None`: all) and rebuild the component around the results.
///
/// Refuses, naming the module, when the pass changes the type of an import
/// or export of a module (see the module documentation); validates the
/// output with the component model on. Returns the input unchanged when no
/// module changed.
pub fn rewrite_modules<R>(
    input: &[u8],
    selection: Option<u32>,
    pass_name: &str,
    mut pass: impl FnMut(&CoreModule, &[u8]) -> Result<(Vec<u8>, R)>,
) -> Result<(Vec<u8>, Vec<ModuleReport<R>>)> {
    let component = Component::parse(input)?;
    let selected: Vec<u32> = component
        .select(selection)?
        .iter()
        .map(|m| m.index)
        .collect();
    let mut reports = Vec::new();
    let mut limit_changes = Vec::new();
    let output = component.rebuild(|module, bytes| {
        if !selected.contains(&module.index) {
            return Ok(None);
        }
        let (new, report) = pass(module, bytes).map_err(|e| in_module(e, module))?;
        if new.as_slice() != bytes {
            let before = Interface::read(bytes).map_err(|e| in_module(e, module))?;
            let after = Interface::read(&new).map_err(|e| {
                Error::Internal(format!("{pass_name} output of {}: {e}", module.describe()))
            })?;
            let (breaking, limits) = before.diff(&after);
            if !breaking.is_empty() {
                return Err(Error::Refused(format!(
                    "{pass_name} would change the imports or exports of {}, which the component instantiates and may use: {}",
                    module.describe(),
                    breaking.join("; ")
                )));
            }
            limit_changes.extend(
                limits
                    .into_iter()
                    .map(|l| format!("{}: {l}", module.describe())),
            );
        }
        reports.push(ModuleReport {
            index: module.index,
            offset: module.offset,
            depth: module.depth,
            size_before: bytes.len(),
            size_after: new.len(),
            report,
        });
        Ok(Some(new))
    })?;
    if output.as_slice() != input {
        if let Err(e) = validate(&output) {
            return Err(if limit_changes.is_empty() {
                Error::Internal(format!(
                    "{pass_name} produced a component that does not validate: {e}"
                ))
            } else {
                Error::Refused(format!(
                    "{pass_name} changes memory limits the component depends on ({}); the component would not validate: {e}",
                    limit_changes.join("; ")
                ))
            });
        }
    }
    Ok((output, reports))
}
