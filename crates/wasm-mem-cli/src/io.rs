//! Input and output handling shared by every subcommand.
//!
//! Input: a file path or `-` for stdin; binary or WebAssembly text.
//! Output: `-o FILE` (written atomically: a temporary file in the same
//! directory, renamed over the target only on success, so `-o` may name the
//! input), or stdout when it is not a terminal; `-t/--wat` prints text.

use crate::component::ModuleArgs;
use anyhow::{bail, Context, Result};
use std::borrow::Cow;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// An input file read into memory.
pub struct Input {
    /// Path, or `None` for stdin.
    pub path: Option<PathBuf>,
    /// The bytes as read.
    pub raw: Vec<u8>,
}

impl Input {
    /// Read `path` (`-` for stdin).
    pub fn read(path: &str) -> Result<Input> {
        if path == "-" {
            let mut raw = Vec::new();
            std::io::stdin()
                .read_to_end(&mut raw)
                .context("cannot read standard input")?;
            return Ok(Input { path: None, raw });
        }
        let raw = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
        Ok(Input {
            path: Some(PathBuf::from(path)),
            raw,
        })
    }

    /// Name for messages.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string())
    }

    /// The input as a validated binary core module (text is assembled first;
    /// binary input is borrowed, not copied). A component is refused: use
    /// [`Input::wasm`] where components work.
    pub fn module(&self) -> Result<Cow<'_, [u8]>> {
        let name = self.name();
        let binary = wasm_mem::input::to_binary(&self.raw).with_context(|| name.clone())?;
        if wasm_mem::component::is_component(&binary) {
            return Err(wasm_mem::Error::Refused(
                "the input is a WebAssembly component; this command works on core modules only"
                    .into(),
            ))
            .with_context(|| name.clone());
        }
        wasm_mem::input::validate(&binary).with_context(|| name.clone())?;
        Ok(binary)
    }
}

/// A validated input: a core module or a component, borrowed from the
/// [`Input`] when it was binary.
pub enum Wasm<'a> {
    /// A binary core module.
    Module(Cow<'a, [u8]>),
    /// A binary component (validated with the component model on).
    Component(Cow<'a, [u8]>),
}

impl Input {
    /// The input as a validated binary core module or component.
    pub fn wasm(&self) -> Result<Wasm<'_>> {
        let name = self.name();
        let binary = wasm_mem::input::to_binary(&self.raw).with_context(|| name.clone())?;
        if wasm_mem::component::is_component(&binary) {
            wasm_mem::component::validate(&binary).with_context(|| name.clone())?;
            return Ok(Wasm::Component(binary));
        }
        Ok(Wasm::Module(self.module()?))
    }
}

/// Output flags shared by subcommands that write a module.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Where to write the module (stdout when omitted and stdout is not a terminal).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the module as WebAssembly text instead of binary.
    #[arg(short = 't', long = "wat")]
    pub wat: bool,
}

impl OutputArgs {
    /// `true` when the module goes to stdout.
    pub fn to_stdout(&self) -> bool {
        self.output.is_none()
    }

    /// Check up front that there is somewhere to write binary output, so a
    /// long pass does not run for nothing.
    pub fn check_destination(&self) -> Result<()> {
        if self.output.is_none() && !self.wat && std::io::stdout().is_terminal() {
            bail!("refusing to write a binary module to a terminal: use -o FILE, -t, or a pipe");
        }
        Ok(())
    }

    /// Write `module` (binary) where the flags say.
    pub fn write(&self, module: &[u8]) -> Result<()> {
        let bytes: Cow<'_, [u8]> = if self.wat {
            let mut text =
                wasmprinter::print_bytes(module).context("cannot print the module as text")?;
            text.push('\n');
            Cow::Owned(text.into_bytes())
        } else {
            Cow::Borrowed(module)
        };
        match &self.output {
            Some(path) => write_atomically(path, &bytes),
            None => {
                self.check_destination()?;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes).context("cannot write to stdout")?;
                stdout.flush().context("cannot write to stdout")
            }
        }
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and
/// a rename, so readers never see a partial file and a failure leaves the
/// target (which may be the input) untouched and no temporary file behind.
///
/// The file is not `fsync`ed: the rename is atomic for every reader, and
/// durability across a power loss is left to the system, as with `cp`,
/// `wasm-opt` and `wasm-tools` (on a 5.6 MB module the flush would cost
/// more than the rest of `pack`).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".wasm-mem-").suffix(".tmp");
    // A new file gets the mode `cp` or a compiler would give it (0666 less
    // the umask), not the owner-only mode of a temporary file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    temp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Keep the permissions of a file we replace.
        let _ = temp.as_file().set_permissions(meta.permissions());
    }
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Print a serialisable report as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// The manifest to use: `--manifest PATH`, else discovered in the current directory.
pub fn load_manifest(path: Option<&Path>) -> Result<wasm_mem::manifest::Manifest> {
    Ok(match path {
        Some(path) => wasm_mem::manifest::Manifest::load(path)?,
        None => wasm_mem::manifest::Manifest::discover(Path::new("."))?.unwrap_or_default(),
    })
}

/// The shape every module-rewriting subcommand shares: refuse `--json`
/// without `-o` (the report and the module cannot both go to stdout), check
/// the destination before the pass runs, read and validate the input, run
/// `pass` on it, write the result atomically, then print the report: JSON on
/// stdout with `--json`, else `text(&report)` on stderr.
///
/// A component runs `pass` on each core module `modules` selects (see
/// [`crate::component::rewrite`]); its report lists them by index.
pub fn rewrite_module<R: serde::Serialize>(
    input: &str,
    output: &OutputArgs,
    json: bool,
    modules: &ModuleArgs,
    pass_name: &str,
    mut pass: impl FnMut(&[u8]) -> Result<(Vec<u8>, R)>,
    text: impl Fn(&R) -> String,
) -> Result<std::process::ExitCode> {
    if json && output.to_stdout() {
        bail!("--json prints the report on stdout, so the module needs -o FILE");
    }
    output.check_destination()?;
    let input = Input::read(input)?;
    let module = match input.wasm()? {
        Wasm::Module(module) => module,
        Wasm::Component(component) => {
            let (result, report) =
                crate::component::rewrite(&component, modules.module, pass_name, &mut pass)
                    .with_context(|| input.name())?;
            output.write(&result)?;
            if json {
                print_json(&report)?;
            } else {
                eprint!("{}", crate::component::render_rewrite(&report, text));
            }
            return Ok(std::process::ExitCode::SUCCESS);
        }
    };
    modules.check_core()?;
    let (result, report) = pass(&module)?;
    output.write(&result)?;
    if json {
        print_json(&report)?;
    } else {
        eprint!("{}", text(&report));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
