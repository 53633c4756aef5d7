//! Initial memory images: what the active data segments of a module write
//! into each memory at instantiation.
//!
//! This is the independent oracle of the data passes (`pack` and friends):
//! it reads the data section with wasmparser and evaluates offset
//! expressions itself (it does not use [`crate::model`] or any pass code),
//! so a test can reconstruct the images of an input and of a pass's output
//! and compare them byte for byte with [`compare`].
//!
//! Semantics (the WebAssembly instantiation rules with bulk memory):
//! active segments are applied in index order across all memories, a later
//! segment overwriting an earlier one; each segment is bounds-checked before
//! it writes (`offset + len > memory size` traps, also for an empty segment)
//! and the first failing segment aborts instantiation, leaving the writes
//! of the segments before it in place. A memory the module defines starts
//! zero-filled, so only its non-zero bytes are part of its image; an
//! imported memory has unknown contents, so its image is the exact set of
//! bytes written and their values (unless [`ImageOptions::zero_filled_imports`]).
//!
//! Offsets that read imported globals need a value: [`ImageOptions::globals`]
//! supplies them (a test evaluates the images at several base values); a
//! segment whose offset cannot be evaluated makes [`initial_images`] fail.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use wasmparser::{DataKind, Operator, Parser, Payload, TypeRef};

/// How to evaluate images.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// Treat imported memories as zero-filled.
    pub zero_filled_imports: bool,
    /// Values of imported globals (by global index).
    pub globals: HashMap<u32, u64>,
    /// Current size in bytes of imported memories (by memory index); the
    /// import's minimum when absent.
    pub memory_sizes: HashMap<u32, u128>,
}

/// The image of one memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryImage {
    /// Memory index.
    pub memory: u32,
    /// `true` when bytes not written are known to be zero.
    pub zero_filled: bool,
    /// Size in bytes at instantiation.
    pub size: u128,
    /// Written bytes as sorted, disjoint, non-adjacent runs `(start, bytes)`.
    /// For a zero-filled memory only non-zero bytes are listed.
    pub runs: Vec<(u64, Vec<u8>)>,
}

/// The images of every memory and whether instantiation traps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleImage {
    /// One image per memory, in index order.
    pub memories: Vec<MemoryImage>,
    /// `true` when a data segment is out of bounds (the images then hold the
    /// writes done before the trap).
    pub traps: bool,
}

/// Reconstruct the initial images of `module` (a valid binary module).
pub fn initial_images(module: &[u8], options: &ImageOptions) -> Result<ModuleImage> {
    let err = |e: wasmparser::BinaryReaderError| Error::from_parser(module, &e);
    // (memory64, size, zero_filled) per memory.
    let mut memories: Vec<(bool, u128, bool)> = Vec::new();
    // Global index -> known value (imported from options, defined from init).
    let mut globals: Vec<Option<u64>> = Vec::new();
    let mut painters: Vec<Painter> = Vec::new();
    let mut traps = false;
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(err)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(err)?;
                    match import.ty {
                        TypeRef::Memory(ty) => {
                            let index = memories.len() as u32;
                            let page = ty.page_size_log2.map_or(65536u128, |l| 1u128 << l);
                            let size = options
                                .memory_sizes
                                .get(&index)
                                .copied()
                                .unwrap_or(ty.initial as u128 * page);
                            memories.push((ty.memory64, size, options.zero_filled_imports));
                        }
                        TypeRef::Global(_) => {
                            let index = globals.len() as u32;
                            globals.push(options.globals.get(&index).copied());
                        }
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for ty in reader {
                    let ty = ty.map_err(err)?;
                    let page = ty.page_size_log2.map_or(65536u128, |l| 1u128 << l);
                    memories.push((ty.memory64, ty.initial as u128 * page, true));
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global.map_err(err)?;
                    let value = eval(&global.init_expr, &globals);
                    globals.push(value);
                }
            }
            Payload::DataSection(reader) => {
                painters = memories.iter().map(|_| Painter::default()).collect();
                for (index, segment) in reader.into_iter().enumerate() {
                    let segment = segment.map_err(err)?;
                    let DataKind::Active {
                        memory_index,
                        offset_expr,
                    } = segment.kind
                    else {
                        continue;
                    };
                    let (wide, size, _) = memories[memory_index as usize];
                    let offset = eval(&offset_expr, &globals).ok_or_else(|| {
                        Error::Refused(format!(
                            "data segment {index}: offset needs the value of an imported global"
                        ))
                    })?;
                    let offset = if wide { offset } else { offset & 0xffff_ffff };
                    if offset as u128 + segment.data.len() as u128 > size {
                        traps = true;
                        break;
                    }
                    painters[memory_index as usize].paint(offset, segment.data);
                }
            }
            _ => {}
        }
    }
    painters.resize_with(memories.len(), Painter::default);
    let memories = memories
        .iter()
        .zip(painters)
        .enumerate()
        .map(|(index, (&(_, size, zero_filled), painter))| MemoryImage {
            memory: index as u32,
            zero_filled,
            size,
            runs: painter.finish(zero_filled),
        })
        .collect();
    Ok(ModuleImage { memories, traps })
}

/// Evaluate an integer constant expression with wrapping arithmetic.
fn eval(expr: &wasmparser::ConstExpr<'_>, globals: &[Option<u64>]) -> Option<u64> {
    let mut stack: Vec<u64> = Vec::new();
    let mut reader = expr.get_operators_reader();
    loop {
        let op = reader.read().ok()?;
        let value = match op {
            Operator::I32Const { value } => value as u32 as u64,
            Operator::I64Const { value } => value as u64,
            Operator::GlobalGet { global_index } => (*globals.get(global_index as usize)?)?,
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let b = stack.pop()? as u32;
                let a = stack.pop()? as u32;
                (match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }) as u64
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let b = stack.pop()?;
                let a = stack.pop()?;
                match op {
                    Operator::I64Add => a.wrapping_add(b),
                    Operator::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }
            }
            Operator::End => return stack.pop(),
            _ => return None,
        };
        stack.push(value);
    }
}

/// Paints segments in order onto disjoint runs (last writer wins).
#[derive(Default)]
struct Painter {
    /// start -> bytes; runs never overlap (they may touch).
    runs: BTreeMap<u64, Vec<u8>>,
}

impl Painter {
    fn paint(&mut self, start: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = start + data.len() as u64;
        // Runs overlapping [start, end).
        let mut overlapping: Vec<u64> = Vec::new();
        if let Some((&s, bytes)) = self.runs.range(..start).next_back() {
            if s + bytes.len() as u64 > start {
                overlapping.push(s);
            }
        }
        overlapping.extend(self.runs.range(start..end).map(|(&s, _)| s));
        if overlapping.is_empty() {
            self.runs.insert(start, data.to_vec());
            return;
        }
        let new_start = overlapping[0].min(start);
        let last = *overlapping.last().unwrap();
        let new_end = (last + self.runs[&last].len() as u64).max(end);
        let mut merged = vec![0u8; (new_end - new_start) as usize];
        for s in overlapping {
            let bytes = self.runs.remove(&s).unwrap();
            let at = (s - new_start) as usize;
            merged[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        let at = (start - new_start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        self.runs.insert(new_start, merged);
    }

    /// Normalise: merge touching runs; for zero-filled memories keep only
    /// non-zero bytes.
    fn finish(self, zero_filled: bool) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut push = |start: u64, bytes: &[u8]| {
            if let Some((s, b)) = out.last_mut() {
                if *s + b.len() as u64 == start {
                    b.extend_from_slice(bytes);
                    return;
                }
            }
            out.push((start, bytes.to_vec()));
        };
        for (start, bytes) in &self.runs {
            if !zero_filled {
                push(*start, bytes);
                continue;
            }
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == 0 {
                    i += 1;
                    continue;
                }
                let j = bytes[i..]
                    .iter()
                    .position(|b| *b == 0)
                    .map_or(bytes.len(), |p| i + p);
                push(start + i as u64, &bytes[i..j]);
                i = j;
            }
        }
        out
    }
}

/// Compare two module images: `Ok` when every memory holds the same bytes
/// and both trap or neither does; otherwise a description of the first
/// difference.
pub fn compare(a: &ModuleImage, b: &ModuleImage) -> std::result::Result<(), String> {
    if a.traps != b.traps {
        return Err(format!(
            "instantiation traps: {} before, {} after",
            a.traps, b.traps
        ));
    }
    if a.memories.len() != b.memories.len() {
        return Err("different number of memories".into());
    }
    for (x, y) in a.memories.iter().zip(&b.memories) {
        if x.runs == y.runs {
            continue;
        }
        // Locate the first differing byte for the message.
        let flat = |runs: &[(u64, Vec<u8>)]| -> Vec<(u64, u8)> {
            runs.iter()
                .flat_map(|(s, b)| b.iter().enumerate().map(move |(i, v)| (s + i as u64, *v)))
                .collect()
        };
        let (fx, fy) = (flat(&x.runs), flat(&y.runs));
        let at = fx.iter().zip(&fy).position(|(p, q)| p != q);
        let detail = match at {
            Some(i) => format!(
                "byte {:#x}={:#04x} before vs byte {:#x}={:#04x} after",
                fx[i].0, fx[i].1, fy[i].0, fy[i].1
            ),
            None => format!("{} written bytes before vs {} after", fx.len(), fy.len()),
        };
        return Err(format!("memory {} differs: {detail}", x.memory));
    }
    Ok(())
}
