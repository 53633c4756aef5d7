//! Errors of the host library.

/// Result with the host [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when reaching into guest memory, calling the
/// guest's allocator or running a module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `addr + len` does not fit in 64 bits.
    #[error("address range overflows 64 bits: {len} bytes at {addr:#x}")]
    Overflow {
        /// Start address.
        addr: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The range is not inside the memory.
    #[error("out of bounds: {len} bytes at {addr:#x} in {memory} of {size} bytes")]
    OutOfBounds {
        /// Which memory.
        memory: String,
        /// Start address.
        addr: u64,
        /// Length in bytes.
        len: u64,
        /// The memory's current size in bytes.
        size: u64,
    },
    /// Borrowed slices are refused for shared memories: another thread may
    /// write them at any time, so only copying access is sound.
    #[error(
        "{memory} is shared: use the copying reads and writes, borrowed slices are not available"
    )]
    Shared {
        /// Which memory.
        memory: String,
    },
    /// No NUL byte within the cap (or before the end of memory).
    #[error("no NUL terminator within {searched} bytes at {addr:#x} in {memory}")]
    Unterminated {
        /// Which memory.
        memory: String,
        /// Start address.
        addr: u64,
        /// How many bytes were searched.
        searched: u64,
    },
    /// A string was not UTF-8.
    #[error("the string at {addr:#x} is not UTF-8: {source}")]
    Utf8 {
        /// Start address.
        addr: u64,
        /// The decoding error.
        source: std::string::FromUtf8Error,
    },
    /// A string to write as a C string has a NUL byte inside.
    #[error(
        "the string has a NUL byte at position {position}: it cannot be written as a C string"
    )]
    InteriorNul {
        /// Where the NUL is.
        position: usize,
    },
    /// No such memory (by export name or index).
    #[error("no memory {0}")]
    NoMemory(String),
    /// A function the caller asked for is not exported.
    #[error("the module does not export a function `{0}`")]
    NoFunction(String),
    /// A function has the wrong type.
    #[error("`{name}` has type {found}, expected {expected}")]
    Signature {
        /// Function name.
        name: String,
        /// What was expected.
        expected: String,
        /// What the module has.
        found: String,
    },
    /// A value does not fit the guest's address width (no truncation ever).
    #[error("{what} {value} does not fit a 32-bit guest address")]
    TooWide {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The guest allocator returned 0 (NULL).
    #[error("the guest allocator `{function}` returned NULL for {size} bytes")]
    OutOfGuestMemory {
        /// The allocator function.
        function: String,
        /// The size asked for.
        size: u64,
    },
    /// A budget smaller than what the module needs at start-up, or naming a
    /// memory that does not exist.
    #[error("budget: {0}")]
    Budget(String),
    /// An `--invoke` argument does not parse as the parameter's type.
    #[error("argument {index} of `{function}`: {message}")]
    Argument {
        /// Function name.
        function: String,
        /// Argument position (0-based).
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The module (or a rewrite of it) is not acceptable.
    #[error(transparent)]
    Module(#[from] wasm_mem::Error),
    /// The engine failed: compilation, linking, instantiation, or a trap.
    /// `{:?}` on the inner error prints the wasm backtrace of a trap.
    #[error("{0}")]
    Wasmtime(wasmtime::Error),
}

impl From<wasmtime::Error> for Error {
    fn from(e: wasmtime::Error) -> Self {
        Error::Wasmtime(e)
    }
}

impl Error {
    /// The trap code when this error is a WebAssembly trap.
    pub fn trap(&self) -> Option<wasmtime::Trap> {
        match self {
            Error::Wasmtime(e) => e.downcast_ref::<wasmtime::Trap>().copied(),
            _ => None,
        }
    }
}
