//! Reading input (binary or text) and validating modules.

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;
use wasmparser::{
    Chunk, FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser, Payload, ValidPayload,
    Validator, WasmFeatures,
};

/// The features wasm-mem accepts: everything wasmparser validates by default
/// (Wasm 3.0: multi-memory, memory64, bulk memory, extended-const, SIMD,
/// threads, GC, ...) plus the custom-page-sizes proposal.
pub fn features() -> WasmFeatures {
    WasmFeatures::default() | WasmFeatures::CUSTOM_PAGE_SIZES
}

/// Turn input bytes into a binary module: binary input is borrowed as is;
/// anything else is parsed as WebAssembly text.
pub fn to_binary(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if bytes.starts_with(b"\0asm") {
        return Ok(Cow::Borrowed(bytes));
    }
    let looks_textual = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'(' || *b == b';');
    if !looks_textual {
        // Reuse the binary path's clear message about the missing magic.
        crate::sections::check_preamble(bytes)?;
    }
    wat::parse_bytes(bytes).map_err(|e| Error::Text(e.to_string()))
}

/// Validate a core module with [`features`].
pub fn validate(bytes: &[u8]) -> Result<()> {
    validate_with(bytes, features())
}

/// Validate a core module with the given features. A component (which the
/// validator would accept) is refused: every caller expects a core module,
/// and components go through [`crate::component`].
pub fn validate_with(bytes: &[u8], features: WasmFeatures) -> Result<()> {
    if crate::component::is_component(bytes) {
        return Err(Error::Refused(
            "the input is a WebAssembly component; this needs a core module".into(),
        ));
    }
    validate_parallel(bytes, features, Bodies::Validate).map_err(|e| Error::from_parser(bytes, &e))
}

/// Whether [`validate_output`] validates function bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Validate every function body.
    Validate,
    /// The bodies and everything they depend on are byte-identical to those
    /// of a module that validated with the same features, except the value
    /// of the data count section: validate only the bodies that
    /// [`may_use_data`] (the instructions naming a data segment are the only
    /// ones whose validity depends on that value) and the module-level
    /// sections.
    DataUsers,
    /// The bodies and everything they depend on are byte-identical to those
    /// of a module that validated with the same features (see
    /// [`crate::rewrite`]): validate only the module-level sections.
    AlreadyValid,
}

/// Validate the output of a pass: failure is an internal error, never a file.
pub fn validate_output(
    bytes: &[u8],
    features: WasmFeatures,
    pass: &str,
    bodies: Bodies,
) -> Result<()> {
    validate_parallel(bytes, features, bodies).map_err(|e| {
        Error::Internal(format!(
            "{pass} produced an invalid module: {} at byte offset {}",
            e.message(),
            e.offset()
        ))
    })
}

/// Below this many bytes of function bodies, validation stays on one thread:
/// handing work to the rayon pool costs more than it saves.
const PARALLEL_CODE_BYTES: usize = 256 * 1024;

/// What `Validator::validate_all` does, with the function bodies (the bulk of
/// the work) validated in parallel once the module-level sections have been.
/// The error reported is the one of the first invalid function in index
/// order, whatever the thread count, so messages are deterministic.
fn validate_parallel(
    bytes: &[u8],
    features: WasmFeatures,
    bodies: Bodies,
) -> std::result::Result<(), wasmparser::BinaryReaderError> {
    let mut validator = Validator::new_with_features(features);
    let mut functions = Vec::new();
    let mut code_bytes = 0;
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut rest = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true)? else {
            unreachable!("with `eof` set the parser reports truncation as an error");
        };
        rest = &rest[consumed..];
        // Bodies already known valid: the function and code section counts
        // are still compared (by the parser, at the section start), but the
        // section's entries are not even sliced out.
        let skip_code = match payload {
            Payload::CodeSectionStart { size, .. } if bodies == Bodies::AlreadyValid => {
                Some(size as usize)
            }
            _ => None,
        };
        match validator.payload(&payload)? {
            ValidPayload::Func(func, body)
                if bodies == Bodies::Validate || may_use_data(&bytes[body.range()]) =>
            {
                code_bytes += body.range().len();
                functions.push((func, body));
            }
            ValidPayload::End(_) => break,
            _ => {}
        }
        if let Some(size) = skip_code {
            parser.skip_section();
            rest = &rest[size..];
        }
    }
    let check = |allocs: &mut FuncValidatorAllocations,
                 (func, body): (FuncToValidate<_>, FunctionBody<'_>)| {
        let mut validator = func.into_validator(std::mem::take(allocs));
        let result = validator.validate(&body);
        *allocs = validator.into_allocations();
        result
    };
    if bodies == Bodies::AlreadyValid {
        return Ok(());
    }
    if code_bytes < PARALLEL_CODE_BYTES {
        let mut allocs = FuncValidatorAllocations::default();
        return functions
            .into_iter()
            .try_for_each(|f| check(&mut allocs, f));
    }
    functions
        .into_par_iter()
        .map_init(FuncValidatorAllocations::default, check)
        .find_map_first(|result| result.err())
        .map_or(Ok(()), Err)
}

/// `false` when a function body (its bytes) certainly holds no instruction
/// that names a data segment: `memory.init` and `data.drop` (prefix byte
/// 0xFC, sub-opcode 8 or 9) and the GC `array.new_data` and
/// `array.init_data` (prefix 0xFB, sub-opcode 9 or 18). The sub-opcode is a
/// LEB whose first byte carries those low bits even when it is over-long. A
/// byte pair that only looks like one (inside an immediate) makes the body
/// count as a user, never the other way round.
pub(crate) fn may_use_data(body: &[u8]) -> bool {
    let follows = |i: usize, ops: &[u8]| body.get(i + 1).is_some_and(|b| ops.contains(&(b & 0x7F)));
    memchr::memchr2_iter(0xFC, 0xFB, body).any(|i| match body[i] {
        0xFC => follows(i, &[8, 9]),
        _ => follows(i, &[9, 18]),
    })
}
