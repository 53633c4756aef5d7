//! The one error type of the library.
//!
//! Every error says what went wrong and, for problems in the input, where:
//! the section and the byte offset. The CLI maps [`Error::exit_code`] to its
//! exit status: 2 for bad input or a refusal, 3 for internal errors.

use std::fmt;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Human-readable section name, e.g. `data section` or `custom section "name"`.
    pub section: String,
    /// Byte offset from the start of the input.
    pub offset: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte offset {} (0x{:x})",
            self.section, self.offset, self.offset
        )
    }
}

/// Everything that can go wrong in wasm-mem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a well-formed or valid WebAssembly module.
    #[error("invalid input: {message} (in {location})")]
    Invalid {
        /// What is wrong.
        message: String,
        /// Where it is.
        location: Location,
    },
    /// The input looked like WebAssembly text but did not parse.
    #[error("invalid text input: {0}")]
    Text(String),
    /// The input is fine, but the requested operation cannot be done exactly.
    #[error("refused: {0}")]
    Refused(String),
    /// A manifest could not be read or has a bad value.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A bug in wasm-mem: e.g. a pass produced a module that does not validate.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// Exit status the CLI should use: 2 for input and usage problems, 3 for
    /// internal errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 3,
            _ => 2,
        }
    }

    /// Build an [`Error::Invalid`] from a wasmparser error, locating the
    /// section of `module` that holds the offending byte.
    pub fn from_parser(module: &[u8], err: &wasmparser::BinaryReaderError) -> Error {
        let offset = err.offset();
        Error::Invalid {
            message: err.message().to_string(),
            location: crate::sections::locate(module, offset),
        }
    }
}
