//! Robustness properties of every wasm-mem command, shared by the cargo-fuzz
//! targets in `fuzz/` and the stable-toolchain tests (which include this file
//! with `#[path]`, so there is one definition of what "robust" means).
//!
//! [`run_command`] feeds raw input bytes to one command exactly the way the
//! CLI does (text or binary in, validation, the model, the pass) and checks
//! the result:
//!
//! - bad input is an `Err` of the library's error type that is not an
//!   internal error (internal errors are the pass's own output failing
//!   validation: a bug);
//! - a refusal is fine;
//! - an output module must validate (with the pass's output features for
//!   the lowerings, which must also really have removed the feature);
//! - a panic is never fine: it propagates to the caller (the fuzzer reports
//!   it, the test fails).
//!
//! The parsers every command relies on ([`wasm_mem::sections::split`],
//! [`wasm_mem::ModuleInfo::read`]) are also run on the raw bytes, before
//! validation, since they must be total on any input.
//!
//! [`mutants`] turns one valid module into hostile variants: truncations,
//! bit flips, overlong and overflowing LEB128 encodings, section size lies,
//! duplicate sections and huge declared counts. The byte framing is written
//! by hand here on purpose: the point is to produce encodings no encoder
//! would.

#![allow(dead_code)]

use wasm_mem::footprint::CliBudgets;
use wasm_mem::lower_multi_memory::LowerOptions;
use wasm_mem::manifest::{Manifest, MaxPages};
use wasm_mem::pack::PackOptions;
use wasm_mem::pages::PageFlags;
use wasm_mem::raise_memory64::RaiseOptions;
use wasm_mem::{Error, ModuleInfo};
use wasmparser::{Validator, WasmFeatures};

/// Every command that reads a module (`run` is only checked for bad input,
/// by the CLI tests: it executes the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `wasm-mem inspect` (text, JSON report and SVG map).
    Inspect,
    /// `wasm-mem check`.
    Check,
    /// `wasm-mem pages`.
    Pages,
    /// `wasm-mem pack`.
    Pack,
    /// `wasm-mem lower multi-memory`.
    LowerMultiMemory,
    /// `wasm-mem lower memory64`.
    LowerMemory64,
    /// `wasm-mem raise memory64`.
    RaiseMemory64,
}

/// All commands, in CLI order.
pub const COMMANDS: [Command; 7] = [
    Command::Inspect,
    Command::Check,
    Command::Pages,
    Command::Pack,
    Command::LowerMultiMemory,
    Command::LowerMemory64,
    Command::RaiseMemory64,
];

impl Command {
    /// The command's CLI arguments before the input path, and after it
    /// (the options variant 0 of [`run_command`] uses).
    pub fn cli_args(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Command::Inspect => (&["inspect"], &["--json"]),
            Command::Check => (&["check"], &[]),
            Command::Pages => (&["pages"], &["--pages", "2"]),
            Command::Pack => (&["pack"], &[]),
            Command::LowerMultiMemory => (&["lower", "multi-memory"], &[]),
            Command::LowerMemory64 => (&["lower", "memory64"], &[]),
            Command::RaiseMemory64 => (&["raise", "memory64"], &["--tables"]),
        }
    }

    /// Whether the command writes a module.
    pub fn writes_module(self) -> bool {
        !matches!(self, Command::Inspect | Command::Check)
    }

    /// A short name for counts and messages.
    pub fn name(self) -> &'static str {
        match self {
            Command::Inspect => "inspect",
            Command::Check => "check",
            Command::Pages => "pages",
            Command::Pack => "pack",
            Command::LowerMultiMemory => "lower multi-memory",
            Command::LowerMemory64 => "lower memory64",
            Command::RaiseMemory64 => "raise memory64",
        }
    }
}

/// How a command ended on one input, when it behaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The input was rejected as bad input (the error message).
    Rejected(String),
    /// The input was valid and the pass refused it.
    Refused(String),
    /// The command succeeded (for writers: the output validated).
    Done,
}

/// A property violation: what went wrong.
pub type Violation = String;

/// Run `command` on raw `input` as the CLI does; `variant` picks the
/// command's options (page settings, pack flags, checked or unchecked
/// lowering, raise with or without tables). See the module docs.
pub fn run_command(command: Command, input: &[u8], variant: u8) -> Result<Outcome, Violation> {
    // The parsers must be total on raw bytes, valid or not.
    let _ = wasm_mem::sections::split(input);
    let _ = ModuleInfo::read(input);

    let binary = match wasm_mem::input::to_binary(input) {
        Ok(binary) => binary,
        Err(e) => return rejected(e),
    };
    if let Err(e) = wasm_mem::input::validate(&binary) {
        return rejected(e);
    }
    let module: &[u8] = &binary;
    let info = match ModuleInfo::read(module) {
        Ok(info) => info,
        Err(e) => return Err(format!("{}: valid module not read: {e}", command.name())),
    };
    let manifest = Manifest::default();
    let output = match command {
        Command::Inspect => {
            let report = wasm_mem::inspect::inspect(&info, module.len(), &manifest);
            serde_json::to_string(&report).map_err(|e| format!("inspect report: {e}"))?;
            let svg = wasm_mem::svg::memory_map(&info, module, &manifest);
            if svg.len() > 4 * module.len() + 1_000_000 {
                return Err(format!(
                    "inspect: SVG of {} bytes for a {}-byte module",
                    svg.len(),
                    module.len()
                ));
            }
            return Ok(Outcome::Done);
        }
        Command::Check => {
            let budgets: CliBudgets = match variant % 3 {
                0 => Vec::new(),
                1 => vec![(0, 1)],
                _ => vec![(0, u64::MAX)],
            };
            let report = wasm_mem::footprint::check(&info, &manifest, &budgets);
            serde_json::to_string(&report).map_err(|e| format!("check report: {e}"))?;
            return Ok(Outcome::Done);
        }
        Command::Pages => {
            let flags = match variant % 5 {
                0 => PageFlags {
                    pages: Some(2),
                    ..PageFlags::default()
                },
                1 => PageFlags {
                    min: Some(1),
                    max: Some(MaxPages::Unbounded),
                    ..PageFlags::default()
                },
                2 => PageFlags {
                    max: Some(MaxPages::Pages(u64::MAX)),
                    ..PageFlags::default()
                },
                3 => PageFlags {
                    fixed: true,
                    ..PageFlags::default()
                },
                _ => PageFlags {
                    min: Some(0),
                    max: Some(MaxPages::Pages(0)),
                    ..PageFlags::default()
                },
            };
            let flags: Vec<(u32, PageFlags)> = info
                .memories
                .iter()
                .map(|m| (m.index, flags.clone()))
                .collect();
            wasm_mem::pages::set_pages(module, &info, &flags, &manifest).map(|(out, _)| out)
        }
        Command::Pack => {
            let options = PackOptions {
                max_segments: if variant & 4 != 0 {
                    1 + u32::from(variant >> 3)
                } else {
                    wasm_mem::pack::DEFAULT_MAX_SEGMENTS
                },
                extended_const: variant & 1 != 0,
                zero_filled_imports: variant & 2 != 0,
            };
            wasm_mem::pack::pack(module, &info, &options).map(|(out, _)| out)
        }
        Command::LowerMultiMemory => {
            let options = LowerOptions {
                checked: variant & 1 == 0,
            };
            wasm_mem::lower_multi_memory::lower_multi_memory(module, &options).map(|(out, _)| out)
        }
        Command::LowerMemory64 => {
            wasm_mem::lower_memory64::lower_memory64(module).map(|(out, _)| out)
        }
        Command::RaiseMemory64 => {
            let options = RaiseOptions {
                memories: (variant & 2 != 0).then(|| vec![0]),
                tables: variant & 1 != 0,
            };
            wasm_mem::raise_memory64::raise_memory64(module, &options).map(|(out, _)| out)
        }
    };
    match output {
        Ok(out) => check_output(command, &info, &out).map(|()| Outcome::Done),
        Err(Error::Internal(why)) => Err(format!("{}: internal error: {why}", command.name())),
        Err(Error::Refused(why)) => Ok(Outcome::Refused(why)),
        Err(e) => Err(format!(
            "{}: valid input answered with a non-refusal error: {e}",
            command.name()
        )),
    }
}

/// Bad input must be a located error, never an internal one.
fn rejected(e: Error) -> Result<Outcome, Violation> {
    match e {
        Error::Internal(why) => Err(format!("bad input gave an internal error: {why}")),
        Error::Refused(why) => Ok(Outcome::Refused(why)),
        e => {
            let text = e.to_string();
            if !(text.contains("byte offset") || matches!(e, Error::Text(_))) {
                return Err(format!("error without a location: {text}"));
            }
            Ok(Outcome::Rejected(text))
        }
    }
}

/// Validate `with` features; `Err` with the message.
pub fn validate_with(bytes: &[u8], features: WasmFeatures) -> Result<(), String> {
    Validator::new_with_features(features)
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| format!("{} at byte offset {}", e.message(), e.offset()))
}

/// The output of a pass must validate, and have what the pass promises.
fn check_output(command: Command, before: &ModuleInfo, out: &[u8]) -> Result<(), Violation> {
    let features = match command {
        Command::LowerMultiMemory => wasm_mem::lower_multi_memory::output_features(),
        Command::LowerMemory64 => wasm_mem::lower_memory64::output_features(),
        _ => wasm_mem::input::features(),
    };
    validate_with(out, features)
        .map_err(|e| format!("{}: output does not validate: {e}", command.name()))?;
    let after = ModuleInfo::read(out)
        .map_err(|e| format!("{}: output not readable: {e}", command.name()))?;
    match command {
        Command::LowerMultiMemory if after.memories.len() > 1 => Err(format!(
            "lower multi-memory: {} memories left",
            after.memories.len()
        )),
        Command::LowerMemory64 if after.memories.iter().any(|m| m.memory64) => {
            Err("lower memory64: a 64-bit memory is left".into())
        }
        Command::Pages | Command::Pack | Command::RaiseMemory64
            if after.memories.len() != before.memories.len() =>
        {
            Err(format!(
                "{}: {} memories before, {} after",
                command.name(),
                before.memories.len(),
                after.memories.len()
            ))
        }
        _ => Ok(()),
    }
}

/// Run every command on `input` (options variant `variant`); the first
/// violation, if any. Returns how many commands rejected, refused and
/// succeeded.
pub fn run_all(input: &[u8], variant: u8) -> Result<[usize; 3], Violation> {
    let mut counts = [0; 3];
    for command in COMMANDS {
        match run_command(command, input, variant)? {
            Outcome::Rejected(_) => counts[0] += 1,
            Outcome::Refused(_) => counts[1] += 1,
            Outcome::Done => counts[2] += 1,
        }
    }
    Ok(counts)
}

/// One section as framed in the binary: `id`, the whole section (header
/// included) and the payload.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Section id.
    pub id: u8,
    /// Start of the id byte.
    pub start: usize,
    /// Start of the payload (after the size field).
    pub payload: usize,
    /// End of the payload.
    pub end: usize,
}

/// Read a u32 LEB128 at `pos`: value and length.
pub fn read_u32_leb(bytes: &[u8], pos: usize) -> Option<(u32, usize)> {
    let mut value = 0u64;
    for i in 0..5 {
        let b = *bytes.get(pos + i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

/// LEB128 of `value` padded to `len` bytes (`len` >= the minimal length;
/// more than 5 bytes is an overlong encoding no u32 reader accepts).
pub fn padded_leb(value: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut v = value;
    for i in 0..len {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if i + 1 < len {
            b |= 0x80;
        }
        out.push(b);
    }
    out
}

/// The sections of a module whose framing is well formed (stops at the
/// first broken header).
pub fn frames(module: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < module.len() {
        let Some((size, len)) = read_u32_leb(module, pos + 1) else {
            break;
        };
        let payload = pos + 1 + len;
        let end = payload + size as usize;
        if end > module.len() {
            break;
        }
        out.push(Frame {
            id: module[pos],
            start: pos,
            payload,
            end,
        });
        pos = end;
    }
    out
}

/// The module with section `frame` replaced by `id`, a size field `size`
/// (already encoded) and `payload`.
fn replace_section(module: &[u8], frame: &Frame, id: u8, size: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(module.len() + 16);
    out.extend_from_slice(&module[..frame.start]);
    out.push(id);
    out.extend_from_slice(size);
    out.extend_from_slice(payload);
    out.extend_from_slice(&module[frame.end..]);
    out
}

/// A mutant and what was done to make it.
pub struct Mutant {
    /// What the mutation is, e.g. `bit 3 of byte 120 (code section)`.
    pub what: String,
    /// The mutated module.
    pub bytes: Vec<u8>,
}

fn section_label(frame: &Frame) -> &'static str {
    wasm_mem::sections::section_name(frame.id)
}

/// Structural mutants of `module`: for each section, truncations at its
/// boundaries, size lies (one byte short, one byte long, 2^32-1), its size
/// field overlong (6 bytes) and overflowing (5 bytes, bits above 32 set),
/// the section duplicated, and, for sections that start with an item count
/// (every non-custom section but start and data count), the count replaced
/// by 2^32-1 and by an overflowing encoding; plus `sampled` truncations and
/// bit flips at byte positions drawn from `seed`.
pub fn mutants(module: &[u8], sampled: usize, seed: u64) -> Vec<Mutant> {
    let mut out = Vec::new();
    let frames = frames(module);
    for (i, f) in frames.iter().enumerate() {
        let name = section_label(f);
        let payload = &module[f.payload..f.end];
        let size = (f.end - f.payload) as u64;
        let mut push = |what: String, bytes: Vec<u8>| out.push(Mutant { what, bytes });
        push(
            format!("truncated after the id of section {i} ({name})"),
            module[..f.start + 1].to_vec(),
        );
        push(
            format!("truncated after the size field of section {i} ({name})"),
            module[..f.payload].to_vec(),
        );
        if f.end > f.payload + 1 {
            push(
                format!("truncated one byte before the end of section {i} ({name})"),
                module[..f.end - 1].to_vec(),
            );
        }
        if size > 0 {
            push(
                format!("size of section {i} ({name}) one byte short"),
                replace_section(
                    module,
                    f,
                    f.id,
                    &padded_leb(size - 1, 1.max(leb_len(size - 1))),
                    payload,
                ),
            );
        }
        push(
            format!("size of section {i} ({name}) one byte long"),
            replace_section(
                module,
                f,
                f.id,
                &padded_leb(size + 1, leb_len(size + 1)),
                payload,
            ),
        );
        push(
            format!("size of section {i} ({name}) 2^32-1"),
            replace_section(module, f, f.id, &padded_leb(u32::MAX.into(), 5), payload),
        );
        push(
            format!("size of section {i} ({name}) in 6 bytes (overlong LEB128)"),
            replace_section(module, f, f.id, &padded_leb(size, 6), payload),
        );
        let mut overflowing = padded_leb(size, 5);
        overflowing[4] |= 0x70;
        push(
            format!("size of section {i} ({name}) with bits above 32 (overflowing LEB128)"),
            replace_section(module, f, f.id, &overflowing, payload),
        );
        if f.id != 0 {
            let mut dup = module[..f.end].to_vec();
            dup.extend_from_slice(&module[f.start..]);
            push(format!("section {i} ({name}) duplicated"), dup);
        }
        let counted = !matches!(f.id, 0 | 8 | 12) && f.id <= 13;
        if counted || f.id == 12 {
            if let Some((_, count_len)) = read_u32_leb(module, f.payload) {
                let rest = &module[f.payload + count_len..f.end];
                for (label, count) in [
                    ("2^32-1", padded_leb(u32::MAX.into(), 5)),
                    ("an overflowing LEB128", {
                        let mut c = padded_leb(1, 5);
                        c[4] |= 0x70;
                        c
                    }),
                    ("a 6-byte LEB128", padded_leb(1, 6)),
                ] {
                    let mut new_payload = count;
                    new_payload.extend_from_slice(rest);
                    let size = padded_leb(new_payload.len() as u64, 5);
                    push(
                        format!("count of section {i} ({name}) replaced by {label}"),
                        replace_section(module, f, f.id, &size, &new_payload),
                    );
                }
            }
        }
    }
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    if module.len() > 8 {
        for _ in 0..sampled {
            let pos = 8 + (rng.next() % (module.len() as u64 - 8)) as usize;
            let where_ = locate(&frames, pos);
            out.push(Mutant {
                what: format!("truncated at byte {pos} ({where_})"),
                bytes: module[..pos].to_vec(),
            });
            let bit = rng.next() % 8;
            let mut flipped = module.to_vec();
            flipped[pos] ^= 1 << bit;
            out.push(Mutant {
                what: format!("bit {bit} of byte {pos} flipped ({where_})"),
                bytes: flipped,
            });
        }
    }
    out
}

/// Minimal LEB128 length of `v`.
pub fn leb_len(v: u64) -> usize {
    ((64 - v.leading_zeros() as usize).max(1)).div_ceil(7)
}

fn locate(frames: &[Frame], pos: usize) -> &'static str {
    frames
        .iter()
        .find(|f| (f.start..f.end).contains(&pos))
        .map_or("header", section_label)
}

/// xorshift64*: deterministic positions for the sampled mutants.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Small valid modules covering what the passes work on (several memories,
/// memory64, passive and active data, bulk memory, tables, custom page
/// sizes), as seeds for byte mutation. Text; assemble with `wat`.
pub const SEED_MODULES: &[&str] = &[
    r#"(module (memory 1 2) (data (i32.const 16) "hello\00\00\00world")
        (func (export "f") (param i32) (result i32) local.get 0 i32.load))"#,
    r#"(module (memory $a 1) (memory $b i64 1 4) (memory $c 0 1)
        (data (memory $a) (i32.const 0) "abc") (data (memory $b) (i64.const 70000) "xyz")
        (data "passive")
        (func (export "copy") (param i64 i32 i32)
          local.get 0 local.get 1 local.get 2 memory.copy $b $a)
        (func (export "grow") (result i32) i32.const 1 memory.grow $c)
        (func (export "init") (param i32) local.get 0 i32.const 0 i32.const 3 memory.init $c 2 data.drop 2))"#,
    r#"(module (memory i64 1) (table i64 2 funcref)
        (global $sp (mut i64) (i64.const 4096)) (export "__stack_pointer" (global $sp))
        (data (i64.const 8) "\01\02\03\04")
        (func (export "load") (param i64) (result i64) local.get 0 i64.load offset=8)
        (func (export "fill") (param i64 i32 i64) local.get 0 local.get 1 local.get 2 memory.fill)
        (func (export "size") (result i64) memory.size))"#,
    r#"(module (import "env" "memory" (memory 1)) (memory 2 (pagesize 1))
        (global $base i32 (i32.const 1024))
        (data (global.get $base) "\00\00\00\01\00\00") (data (memory 1) (i32.const 0) "z")
        (func (export "s") (param i32 i32) local.get 0 local.get 1 i32.store8 1))"#,
];
