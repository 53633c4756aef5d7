//! Spec-suite runner with a module transform hook.
//!
//! [`run_wast`] parses a `.wast` script with the `wast` crate and executes its
//! directives on a wasmtime 48 engine built from [`SpecOptions::config`]. Every
//! module the script *runs* (`module`, `module definition`, the module of an
//! `assert_trap` on instantiation, and `assert_unlinkable` modules the engine
//! cannot load as they are) first goes through [`SpecOptions::transform`]; the
//! engine then sees only the transformed bytes. A suite therefore passes when
//! the pass preserved the meaning of every module, and the engine config
//! proves the pass removed what it claims to remove (run `lower multi-memory`
//! output on an engine with multi-memory turned off).
//!
//! Counting: every directive is one command and ends up in exactly one of
//! passed, failed, skipped or refused. Modules the transform refuses are
//! listed in [`FileReport::refused`] and every command that depends on them (invokes on
//! the instance, `register`, modules importing from a refused registration) is
//! skipped with the reason, never failed. A transform that panics, output the
//! engine rejects, or an instantiation that fails unexpectedly is a failure,
//! and the commands that depend on that module are skipped (the failure is
//! already counted once).
//!
//! Assertions:
//! - `assert_return` compares exactly: integers and floats bit for bit,
//!   `nan:canonical` / `nan:arithmetic` by the spec's NaN classes (also per
//!   v128 lane), references by null-ness, host value (`ref.extern N`) or kind
//!   (`ref.func`, `ref.any`, `ref.eq`, `ref.i31`, `ref.struct`, `ref.array`),
//!   and `either` alternatives.
//! - `assert_trap` (on an invoke or on module instantiation) and
//!   `assert_exhaustion` accept any wasmtime [`Trap`] (its messages differ from
//!   the spec interpreter's), but never a non-trap error such as a link error.
//! - `assert_invalid` / `assert_malformed` are not transformed: they pass when
//!   the *original* module fails to parse or to validate with
//!   [`SpecOptions::features`] (the features the suite is written against,
//!   independent of what the engine config allows).
//! - `assert_unlinkable` passes when instantiation fails with a non-trap error.
//!   The original module is linked as is when the engine accepts it, otherwise
//!   its transformed form is used (so a refusal skips the command).
//! - Not supported, skipped with a reason: `thread` / `wait`, components,
//!   `assert_exception`, `assert_suspension`, custom-section assertions.
//!
//! The `spectest` host module is registered in every script: `print*`
//! functions, `global_i32` = 666, `global_i64` = 666, `global_f32` = 666.6,
//! `global_f64` = 666.6, `table` (10..20 funcref), `table64`, and `memory`
//! (1..2 pages).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use wasmtime::{
    Engine, ExternRef, Func, GlobalType, Instance, Linker, Memory, MemoryType, Module, Mutability,
    Ref, RefType, Store, Table, TableType, Trap, Val, ValType,
};
use wast::core::{NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::token::{Id, Span};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

use crate::{panic_message, Refusal, Transform};

/// How [`run_wast`] runs a script.
pub struct SpecOptions<'a> {
    /// The engine configuration the transformed modules run on (e.g. with
    /// `wasm_multi_memory(false)` to prove a lowering removed extra memories).
    pub config: wasmtime::Config,
    /// The features the suite's *original* modules are written against;
    /// `assert_invalid` / `assert_malformed` modules must fail to validate
    /// with these.
    pub features: wasmparser::WasmFeatures,
    /// The pass under test. Return `Err(Refusal)` when the pass deliberately
    /// refuses a module; panic on internal errors (counted as a failure).
    pub transform: Transform<'a>,
}

/// The identity transform: returns its input unchanged.
pub fn identity(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    Ok(bytes.to_vec())
}

/// One noted command of a script: its line (1-based) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineNote {
    /// Line of the directive in the `.wast` file.
    pub line: usize,
    /// What was expected and what happened, or why it was skipped/refused.
    pub text: String,
}

/// The outcome of one `.wast` file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// The file name given to [`run_wast`].
    pub name: String,
    /// Commands that behaved as the script expects.
    pub passed: usize,
    /// Commands that did not, with what was expected and what happened.
    pub failed: Vec<LineNote>,
    /// Commands not run, with the reason (unsupported, or depends on a
    /// refused or broken module).
    pub skipped: Vec<LineNote>,
    /// Modules the transform refused, with the pass's reason.
    pub refused: Vec<LineNote>,
}

impl FileReport {
    /// Failure messages as `file:line: text`.
    pub fn failure_messages(&self) -> Vec<String> {
        self.failed
            .iter()
            .map(|n| format!("{}:{}: {}", self.name, n.line, n.text))
            .collect()
    }
}

/// Runs one `.wast` script; see the module docs for the rules.
///
/// A script that does not parse, or an engine config wasmtime rejects, gives
/// a report with one failure at line 0.
pub fn run_wast(name: &str, source: &str, opts: &SpecOptions) -> FileReport {
    let mut report = FileReport {
        name: name.to_string(),
        ..FileReport::default()
    };
    let engine = match Engine::new(&opts.config) {
        Ok(engine) => engine,
        Err(e) => {
            report.failed.push(LineNote {
                line: 0,
                text: format!("engine config rejected: {e}"),
            });
            return report;
        }
    };
    let mut lexer = Lexer::new(source);
    lexer.allow_confusing_unicode(true);
    let buffer = match ParseBuffer::new_with_lexer(lexer) {
        Ok(b) => b,
        Err(e) => {
            report.failed.push(LineNote {
                line: 0,
                text: format!("script does not lex: {e}"),
            });
            return report;
        }
    };
    let wast = match parser::parse::<Wast>(&buffer) {
        Ok(w) => w,
        Err(mut e) => {
            e.set_text(source);
            report.failed.push(LineNote {
                line: 0,
                text: format!("script does not parse: {e}"),
            });
            return report;
        }
    };
    let mut runner = match Runner::new(engine, source, opts, report) {
        Ok(r) => r,
        Err(mut report) => {
            report.name = name.to_string();
            return report;
        }
    };
    for directive in wast.directives {
        runner.directive(directive);
    }
    runner.report
}

/// Runs several scripts (`(name, source)` pairs, as from
/// [`crate::suite_files`]) and returns their reports in order.
pub fn run_files(files: &[(String, String)], opts: &SpecOptions) -> Vec<FileReport> {
    files
        .iter()
        .map(|(name, source)| run_wast(name, source, opts))
        .collect()
}

/// Prints a per-file table (passed, failed, skipped, refused) with totals,
/// then every failure as `file:line: text`, the refusals, and the skip
/// reasons grouped with their counts.
pub fn print_table(reports: &[FileReport]) {
    print!("{}", format_table(reports));
}

/// The text [`print_table`] prints.
pub fn format_table(reports: &[FileReport]) -> String {
    let mut out = String::new();
    let width = reports
        .iter()
        .map(|r| r.name.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>6}  {:>7}  {:>7}",
        "file", "passed", "failed", "skipped", "refused"
    );
    let (mut p, mut f, mut s, mut r) = (0, 0, 0, 0);
    for rep in reports {
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>6}  {:>7}  {:>7}",
            rep.name,
            rep.passed,
            rep.failed.len(),
            rep.skipped.len(),
            rep.refused.len()
        );
        p += rep.passed;
        f += rep.failed.len();
        s += rep.skipped.len();
        r += rep.refused.len();
    }
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>6}  {:>7}  {:>7}",
        "total", p, f, s, r
    );
    if f > 0 {
        let _ = writeln!(out, "\nfailures:");
        for rep in reports {
            for msg in rep.failure_messages() {
                let _ = writeln!(out, "  {msg}");
            }
        }
    }
    if r > 0 {
        let _ = writeln!(out, "\nrefused modules:");
        for rep in reports {
            for n in &rep.refused {
                let _ = writeln!(out, "  {}:{}: {}", rep.name, n.line, n.text);
            }
        }
    }
    if s > 0 {
        let mut reasons: Vec<(String, usize)> = Vec::new();
        for rep in reports {
            for n in &rep.skipped {
                let reason = format!("{}: {}", rep.name, n.text);
                match reasons.iter_mut().find(|(t, _)| *t == reason) {
                    Some((_, count)) => *count += 1,
                    None => reasons.push((reason, 1)),
                }
            }
        }
        let _ = writeln!(out, "\nskipped:");
        for (reason, count) in reasons {
            let _ = writeln!(out, "  {count:>5} x {reason}");
        }
    }
    out
}

/// An instance slot: a live instance, or why commands on it are skipped.
#[derive(Clone)]
enum Slot {
    Live(Instance),
    Unavailable(String),
}

/// A `module definition`: a compiled module, or why it is unavailable.
#[derive(Clone)]
enum Definition {
    Ready(Module),
    Unavailable(String),
}

/// What running an action gave.
enum Exec {
    /// Completed with these values.
    Values(Vec<Val>),
    /// Failed at run time (a trap or another error).
    Error(wasmtime::Error),
    /// Cannot be run; the command is skipped.
    Skip(String),
    /// The command itself is wrong for this instance (missing export, bad
    /// arguments): a failure.
    Bad(String),
}

struct Runner<'o> {
    /// Byte offsets of the script's newlines, to turn spans into lines.
    newlines: Vec<usize>,
    opts: &'o SpecOptions<'o>,
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Slot>,
    named: HashMap<String, Slot>,
    definitions: HashMap<String, Definition>,
    last_definition: Option<Definition>,
    /// Registered names whose module is unavailable, with the reason.
    unavailable_registrations: HashMap<String, String>,
    report: FileReport,
}

impl<'o> Runner<'o> {
    fn new(
        engine: Engine,
        source: &str,
        opts: &'o SpecOptions<'o>,
        mut report: FileReport,
    ) -> Result<Self, FileReport> {
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        if let Err(e) = link_spectest(&mut linker, &mut store) {
            report.failed.push(LineNote {
                line: 0,
                text: format!("cannot register the spectest module: {e}"),
            });
            return Err(report);
        }
        Ok(Runner {
            newlines: newline_offsets(source),
            opts,
            engine,
            store,
            linker,
            current: None,
            named: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
            unavailable_registrations: HashMap::new(),
            report,
        })
    }

    fn line(&self, span: Span) -> usize {
        self.newlines.partition_point(|&nl| nl < span.offset()) + 1
    }

    fn pass(&mut self) {
        self.report.passed += 1;
    }

    fn fail(&mut self, span: Span, text: impl Into<String>) {
        let line = self.line(span);
        self.report.failed.push(LineNote {
            line,
            text: text.into(),
        });
    }

    fn skip(&mut self, span: Span, text: impl Into<String>) {
        let line = self.line(span);
        self.report.skipped.push(LineNote {
            line,
            text: text.into(),
        });
    }

    fn directive(&mut self, directive: WastDirective) {
        let span = directive.span();
        match directive {
            WastDirective::Module(module) => {
                let name = module.name().map(|id| id.name().to_string());
                let slot = match self.prepare(span, module) {
                    Definition::Ready(module) => self.instantiate_expecting_success(span, &module),
                    Definition::Unavailable(reason) => Slot::Unavailable(reason),
                };
                self.set_current(name, slot);
            }
            WastDirective::ModuleDefinition(module) => {
                let name = module.name().map(|id| id.name().to_string());
                let def = self.prepare(span, module);
                if matches!(def, Definition::Ready(_)) {
                    self.pass();
                }
                if let Some(name) = name {
                    self.definitions.insert(name, def.clone());
                }
                self.last_definition = Some(def);
            }
            WastDirective::ModuleInstance {
                span,
                instance,
                module,
            } => {
                let def = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                };
                let slot = match def {
                    Some(Definition::Ready(module)) => {
                        self.instantiate_expecting_success(span, &module)
                    }
                    Some(Definition::Unavailable(reason)) => {
                        self.skip(span, reason.clone());
                        Slot::Unavailable(reason)
                    }
                    None => {
                        self.fail(span, "module instance: no such module definition");
                        Slot::Unavailable(format!(
                            "module instance at line {} failed",
                            self.line(span)
                        ))
                    }
                };
                self.set_current(instance.map(|id| id.name().to_string()), slot);
            }
            WastDirective::Register { span, name, module } => match self.slot(module) {
                Slot::Live(instance) => {
                    match self.linker.instance(&mut self.store, name, instance) {
                        Ok(_) => {
                            self.unavailable_registrations.remove(name);
                            self.pass();
                        }
                        Err(e) => self.fail(span, format!("register {name:?}: {e}")),
                    }
                }
                Slot::Unavailable(reason) => {
                    self.unavailable_registrations
                        .insert(name.to_string(), reason.clone());
                    self.skip(span, reason);
                }
            },
            WastDirective::Invoke(invoke) => match self.invoke(&invoke) {
                Exec::Values(_) => self.pass(),
                Exec::Error(e) => self.fail(
                    span,
                    format!("invoke {:?}: expected success, got error: {e}", invoke.name),
                ),
                Exec::Skip(reason) => self.skip(span, reason),
                Exec::Bad(text) => self.fail(span, text),
            },
            WastDirective::AssertReturn {
                span,
                exec,
                results,
            } => self.assert_return(span, exec, &results),
            WastDirective::AssertTrap {
                span,
                exec,
                message,
            } => self.assert_trap(span, exec, message),
            WastDirective::AssertExhaustion {
                span,
                call,
                message,
            } => match self.invoke(&call) {
                Exec::Error(e) if is_trap(&e) => self.pass(),
                Exec::Error(e) => self.fail(
                    span,
                    format!("expected exhaustion ({message}), got a non-trap error: {e}"),
                ),
                Exec::Values(v) => self.fail(
                    span,
                    format!("expected exhaustion ({message}), got values {v:?}"),
                ),
                Exec::Skip(reason) => self.skip(span, reason),
                Exec::Bad(text) => self.fail(span, text),
            },
            WastDirective::AssertInvalid {
                span,
                module,
                message,
            }
            | WastDirective::AssertMalformed {
                span,
                module,
                message,
            } => self.assert_rejected(span, module, message),
            WastDirective::AssertUnlinkable {
                span,
                module,
                message,
            } => self.assert_unlinkable(span, module, message),
            WastDirective::AssertInvalidCustom { span, .. }
            | WastDirective::AssertMalformedCustom { span, .. } => {
                self.skip(span, "custom-section assertions are not checked")
            }
            WastDirective::AssertException { span, .. } => {
                self.skip(span, "assert_exception is not supported")
            }
            WastDirective::AssertSuspension { span, .. } => {
                self.skip(span, "assert_suspension is not supported")
            }
            WastDirective::Thread(thread) => {
                self.skip(thread.span, "threads (thread/wait) are not supported")
            }
            WastDirective::Wait { span, .. } => {
                self.skip(span, "threads (thread/wait) are not supported")
            }
        }
    }

    fn set_current(&mut self, name: Option<String>, slot: Slot) {
        if let Some(name) = name {
            self.named.insert(name, slot.clone());
        }
        self.current = Some(slot);
    }

    fn slot(&self, module: Option<Id>) -> Slot {
        match module {
            Some(id) => self
                .named
                .get(id.name())
                .cloned()
                .unwrap_or_else(|| Slot::Unavailable(format!("no module named ${}", id.name()))),
            None => self
                .current
                .clone()
                .unwrap_or_else(|| Slot::Unavailable("no module instantiated yet".into())),
        }
    }

    /// Encodes, transforms and compiles a module the script runs. Failures
    /// and refusals are reported here; the returned reason is what the
    /// commands depending on the module are skipped with.
    fn prepare(&mut self, span: Span, mut module: QuoteWat) -> Definition {
        let line = self.line(span);
        if matches!(
            module,
            QuoteWat::QuoteComponent(..) | QuoteWat::Wat(Wat::Component(_))
        ) {
            let reason = "components are not supported".to_string();
            self.skip(span, reason.clone());
            return Definition::Unavailable(reason);
        }
        let label = match module.name() {
            Some(id) => format!("module ${}", id.name()),
            None => "module".to_string(),
        };
        let bytes = match module.encode() {
            Ok(b) => b,
            Err(e) => {
                self.fail(span, format!("{label} does not encode: {e}"));
                return Definition::Unavailable(format!("{label} at line {line} failed"));
            }
        };
        match self.transform_and_compile(&bytes) {
            Ok(module) => Definition::Ready(module),
            Err(Prepared::Refused(reason)) => {
                self.report.refused.push(LineNote {
                    line,
                    text: format!("{label}: {reason}"),
                });
                Definition::Unavailable(format!("{label} at line {line} was refused"))
            }
            Err(Prepared::Failed(text)) => {
                self.fail(span, format!("{label}: {text}"));
                Definition::Unavailable(format!("{label} at line {line} failed"))
            }
        }
    }

    fn transform_and_compile(&self, bytes: &[u8]) -> Result<Module, Prepared> {
        let out = match catch_unwind(AssertUnwindSafe(|| (self.opts.transform)(bytes))) {
            Ok(Ok(out)) => out,
            Ok(Err(refusal)) => return Err(Prepared::Refused(refusal.reason)),
            Err(panic) => {
                return Err(Prepared::Failed(format!(
                    "transform panicked: {}",
                    panic_message(&*panic)
                )))
            }
        };
        Module::new(&self.engine, &out).map_err(|e| {
            Prepared::Failed(format!("transformed module rejected by the engine: {e:#}"))
        })
    }

    /// Instantiates a module the script expects to instantiate; counts the
    /// command.
    fn instantiate_expecting_success(&mut self, span: Span, module: &Module) -> Slot {
        let line = self.line(span);
        match self.linker.instantiate(&mut self.store, module) {
            Ok(instance) => {
                self.pass();
                Slot::Live(instance)
            }
            Err(e) => {
                if let Some(reason) = self.blocked_import(module) {
                    self.skip(span, reason.clone());
                    return Slot::Unavailable(reason);
                }
                self.fail(span, format!("instantiation failed: {e:#}"));
                Slot::Unavailable(format!("module at line {line} failed to instantiate"))
            }
        }
    }

    /// If the module imports from a registration whose module is
    /// unavailable, the reason.
    fn blocked_import(&self, module: &Module) -> Option<String> {
        module.imports().find_map(|import| {
            self.unavailable_registrations
                .get(import.module())
                .map(|reason| format!("imports from {:?}: {reason}", import.module()))
        })
    }

    fn invoke(&mut self, invoke: &WastInvoke) -> Exec {
        let instance = match self.slot(invoke.module) {
            Slot::Live(instance) => instance,
            Slot::Unavailable(reason) => return Exec::Skip(reason),
        };
        let Some(func) = instance.get_func(&mut self.store, invoke.name) else {
            return Exec::Bad(format!("no exported function {:?}", invoke.name));
        };
        let ty = func.ty(&self.store);
        let params: Vec<ValType> = ty.params().collect();
        if params.len() != invoke.args.len() {
            return Exec::Bad(format!(
                "invoke {:?}: {} arguments given, function takes {}",
                invoke.name,
                invoke.args.len(),
                params.len()
            ));
        }
        let mut args = Vec::with_capacity(params.len());
        for (arg, param) in invoke.args.iter().zip(&params) {
            match self.arg(arg, param) {
                Ok(v) => args.push(v),
                Err(text) => return Exec::Bad(format!("invoke {:?}: {text}", invoke.name)),
            }
        }
        call(&mut self.store, func, &args)
    }

    fn arg(&mut self, arg: &WastArg, param: &ValType) -> Result<Val, String> {
        let WastArg::Core(arg) = arg else {
            return Err("component-model argument".into());
        };
        Ok(match arg {
            WastArgCore::I32(v) => Val::I32(*v),
            WastArgCore::I64(v) => Val::I64(*v),
            WastArgCore::F32(v) => Val::F32(v.bits),
            WastArgCore::F64(v) => Val::F64(v.bits),
            WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes()).into()),
            WastArgCore::RefNull(_) => match param {
                ValType::Ref(rt) => Val::null_ref(rt.heap_type()),
                other => return Err(format!("ref.null argument for a {other} parameter")),
            },
            WastArgCore::RefExtern(n) => {
                let r = ExternRef::new(&mut self.store, *n).map_err(|e| e.to_string())?;
                Val::ExternRef(Some(r))
            }
            WastArgCore::RefHost(n) => {
                let r = ExternRef::new(&mut self.store, *n).map_err(|e| e.to_string())?;
                let any = wasmtime::AnyRef::convert_extern(&mut self.store, r)
                    .map_err(|e| e.to_string())?;
                Val::AnyRef(Some(any))
            }
        })
    }

    fn get(&mut self, module: Option<Id>, global: &str) -> Exec {
        let instance = match self.slot(module) {
            Slot::Live(instance) => instance,
            Slot::Unavailable(reason) => return Exec::Skip(reason),
        };
        match instance.get_global(&mut self.store, global) {
            Some(g) => Exec::Values(vec![g.get(&mut self.store)]),
            None => Exec::Bad(format!("no exported global {global:?}")),
        }
    }

    fn assert_return(&mut self, span: Span, exec: WastExecute, results: &[WastRet]) {
        let outcome = match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Get { module, global, .. } => self.get(module, global),
            WastExecute::Wat(wat) => {
                match self.prepare(span, QuoteWat::Wat(wat)) {
                    Definition::Ready(module) => {
                        self.instantiate_expecting_success(span, &module);
                    }
                    Definition::Unavailable(_) => {}
                }
                return;
            }
        };
        match outcome {
            Exec::Values(values) => {
                if values.len() != results.len() {
                    self.fail(
                        span,
                        format!(
                            "expected {} results, got {}: {values:?}",
                            results.len(),
                            values.len()
                        ),
                    );
                    return;
                }
                for (i, (value, expected)) in values.iter().zip(results).enumerate() {
                    let WastRet::Core(expected) = expected else {
                        self.skip(span, "component-model results are not supported");
                        return;
                    };
                    match match_value(&mut self.store, value, expected) {
                        Ok(()) => {}
                        Err(Mismatch::Differs(text)) => {
                            self.fail(span, format!("result {i}: {text}"));
                            return;
                        }
                        Err(Mismatch::Unsupported(text)) => {
                            self.skip(span, text);
                            return;
                        }
                    }
                }
                self.pass();
            }
            Exec::Error(e) => self.fail(span, format!("expected values, got error: {e:#}")),
            Exec::Skip(reason) => self.skip(span, reason),
            Exec::Bad(text) => self.fail(span, text),
        }
    }

    fn assert_trap(&mut self, span: Span, exec: WastExecute, message: &str) {
        let outcome = match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Get { module, global, .. } => self.get(module, global),
            WastExecute::Wat(wat) => match self.prepare(span, QuoteWat::Wat(wat)) {
                Definition::Ready(module) => {
                    match self.linker.instantiate(&mut self.store, &module) {
                        Ok(_) => Exec::Values(Vec::new()),
                        Err(e) => {
                            if !is_trap(&e) {
                                if let Some(reason) = self.blocked_import(&module) {
                                    self.skip(span, reason);
                                    return;
                                }
                            }
                            Exec::Error(e)
                        }
                    }
                }
                // Already counted as refused or failed.
                Definition::Unavailable(_) => return,
            },
        };
        match outcome {
            Exec::Error(e) if is_trap(&e) => self.pass(),
            Exec::Error(e) => self.fail(
                span,
                format!("expected trap ({message}), got a non-trap error: {e:#}"),
            ),
            Exec::Values(v) => {
                self.fail(span, format!("expected trap ({message}), got values {v:?}"))
            }
            Exec::Skip(reason) => self.skip(span, reason),
            Exec::Bad(text) => self.fail(span, text),
        }
    }

    /// `assert_invalid` / `assert_malformed`: the original must not parse or
    /// validate with the suite's features.
    fn assert_rejected(&mut self, span: Span, mut module: QuoteWat, message: &str) {
        if matches!(
            module,
            QuoteWat::QuoteComponent(..) | QuoteWat::Wat(Wat::Component(_))
        ) {
            self.skip(span, "components are not supported");
            return;
        }
        let bytes = match module.encode() {
            Ok(bytes) => bytes,
            Err(_) => return self.pass(),
        };
        let mut validator = wasmparser::Validator::new_with_features(self.opts.features);
        match validator.validate_all(&bytes) {
            Err(_) => self.pass(),
            Ok(_) => self.fail(
                span,
                format!("expected the module to be rejected ({message}), but it validates"),
            ),
        }
    }

    fn assert_unlinkable(&mut self, span: Span, mut wat: Wat, message: &str) {
        if matches!(wat, Wat::Component(_)) {
            self.skip(span, "components are not supported");
            return;
        }
        let bytes = match wat.encode() {
            Ok(b) => b,
            Err(e) => return self.fail(span, format!("module does not encode: {e}")),
        };
        let module = match Module::new(&self.engine, &bytes) {
            Ok(m) => m,
            Err(_) => match self.transform_and_compile(&bytes) {
                Ok(m) => m,
                Err(Prepared::Refused(reason)) => {
                    return self.skip(span, format!("unlinkable module refused: {reason}"))
                }
                Err(Prepared::Failed(text)) => return self.fail(span, text),
            },
        };
        if let Some(reason) = self.blocked_import(&module) {
            return self.skip(span, reason);
        }
        match self.linker.instantiate(&mut self.store, &module) {
            Err(e) if !is_trap(&e) => self.pass(),
            Err(e) => self.fail(
                span,
                format!("expected a link error ({message}), got a trap: {e:#}"),
            ),
            Ok(_) => self.fail(
                span,
                format!("expected a link error ({message}), but the module linked"),
            ),
        }
    }
}

fn newline_offsets(source: &str) -> Vec<usize> {
    source
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect()
}

enum Prepared {
    Refused(String),
    Failed(String),
}

fn call(store: &mut Store<()>, func: Func, args: &[Val]) -> Exec {
    let mut results = vec![Val::I32(0); func.ty(&*store).results().len()];
    match func.call(&mut *store, args, &mut results) {
        Ok(()) => Exec::Values(results),
        Err(e) => Exec::Error(e),
    }
}

/// True when a wasmtime error is a wasm trap (not a link, type or host error).
pub(crate) fn is_trap(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<Trap>().is_some()
}

enum Mismatch {
    Differs(String),
    Unsupported(String),
}

fn match_value(
    store: &mut Store<()>,
    actual: &Val,
    expected: &WastRetCore,
) -> Result<(), Mismatch> {
    let differs = |what: String| Err(Mismatch::Differs(what));
    match (expected, actual) {
        (WastRetCore::Either(options), _) => {
            let mut last = None;
            for option in options {
                match match_value(store, actual, option) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or(Mismatch::Differs("empty either".into())))
        }
        (WastRetCore::I32(e), Val::I32(a)) => {
            if e == a {
                Ok(())
            } else {
                differs(format!(
                    "expected i32 {e} ({:#x}), got {a} ({:#x})",
                    *e as u32, *a as u32
                ))
            }
        }
        (WastRetCore::I64(e), Val::I64(a)) => {
            if e == a {
                Ok(())
            } else {
                differs(format!(
                    "expected i64 {e} ({:#x}), got {a} ({:#x})",
                    *e as u64, *a as u64
                ))
            }
        }
        (WastRetCore::F32(e), Val::F32(a)) => match_f32(*a, e).map_err(Mismatch::Differs),
        (WastRetCore::F64(e), Val::F64(a)) => match_f64(*a, e).map_err(Mismatch::Differs),
        (WastRetCore::V128(e), Val::V128(a)) => {
            match_v128(a.as_u128(), e).map_err(Mismatch::Differs)
        }
        (WastRetCore::RefNull(_), v) => match ref_is_null(v) {
            Some(true) => Ok(()),
            Some(false) => differs(format!("expected a null reference, got {v:?}")),
            None => differs(format!("expected a null reference, got {v:?}")),
        },
        (WastRetCore::RefFunc(_), Val::FuncRef(Some(_))) => Ok(()),
        (WastRetCore::RefExtern(None), Val::ExternRef(Some(_))) => Ok(()),
        (WastRetCore::RefExtern(Some(n)), Val::ExternRef(Some(r))) => {
            let data = r
                .data(&*store)
                .map_err(|e| Mismatch::Differs(e.to_string()))?
                .and_then(|d| d.downcast_ref::<u32>().copied());
            if data == Some(*n) {
                Ok(())
            } else {
                differs(format!("expected ref.extern {n}, got host data {data:?}"))
            }
        }
        (WastRetCore::RefHost(n), Val::AnyRef(Some(r))) => {
            let ext = ExternRef::convert_any(&mut *store, *r)
                .map_err(|e| Mismatch::Differs(e.to_string()))?;
            let data = ext
                .data(&*store)
                .map_err(|e| Mismatch::Differs(e.to_string()))?
                .and_then(|d| d.downcast_ref::<u32>().copied());
            if data == Some(*n) {
                Ok(())
            } else {
                differs(format!("expected ref.host {n}, got host data {data:?}"))
            }
        }
        (WastRetCore::RefAny, Val::AnyRef(Some(_))) => Ok(()),
        (WastRetCore::RefEq, Val::AnyRef(Some(r))) => {
            any_kind(r.is_eqref(&*store), "eqref", actual)
        }
        (WastRetCore::RefI31, Val::AnyRef(Some(r))) => {
            any_kind(r.is_i31(&*store), "i31ref", actual)
        }
        (WastRetCore::RefStruct, Val::AnyRef(Some(r))) => {
            any_kind(r.is_struct(&*store), "structref", actual)
        }
        (WastRetCore::RefArray, Val::AnyRef(Some(r))) => {
            any_kind(r.is_array(&*store), "arrayref", actual)
        }
        (WastRetCore::RefI31Shared, _) => Err(Mismatch::Unsupported(
            "shared i31ref results are not supported".into(),
        )),
        (expected, actual) => differs(format!("expected {expected:?}, got {actual:?}")),
    }
}

fn any_kind(is: wasmtime::Result<bool>, kind: &str, actual: &Val) -> Result<(), Mismatch> {
    match is {
        Ok(true) => Ok(()),
        Ok(false) => Err(Mismatch::Differs(format!(
            "expected a {kind}, got {actual:?}"
        ))),
        Err(e) => Err(Mismatch::Differs(e.to_string())),
    }
}

fn ref_is_null(v: &Val) -> Option<bool> {
    Some(match v {
        Val::FuncRef(r) => r.is_none(),
        Val::ExternRef(r) => r.is_none(),
        Val::AnyRef(r) => r.is_none(),
        Val::ExnRef(r) => r.is_none(),
        Val::ContRef(r) => r.is_none(),
        _ => return None,
    })
}

/// Compares an f32 result (as bits) with a pattern: exact bits, or the
/// spec's canonical / arithmetic NaN classes (sign free).
fn match_f32(actual: u32, expected: &NanPattern<wast::token::F32>) -> Result<(), String> {
    const EXP: u32 = 0x7f80_0000;
    const QUIET: u32 = 0x0040_0000;
    let ok = match expected {
        NanPattern::CanonicalNan => actual & 0x7fff_ffff == EXP | QUIET,
        NanPattern::ArithmeticNan => actual & EXP == EXP && actual & QUIET == QUIET,
        NanPattern::Value(v) => actual == v.bits,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected f32 {}, got {} ({actual:#010x})",
            describe_nan(expected, |v| format!(
                "{} ({:#010x})",
                f32::from_bits(v.bits),
                v.bits
            )),
            f32::from_bits(actual)
        ))
    }
}

/// [`match_f32`] for f64.
fn match_f64(actual: u64, expected: &NanPattern<wast::token::F64>) -> Result<(), String> {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    const QUIET: u64 = 0x0008_0000_0000_0000;
    let ok = match expected {
        NanPattern::CanonicalNan => actual & 0x7fff_ffff_ffff_ffff == EXP | QUIET,
        NanPattern::ArithmeticNan => actual & EXP == EXP && actual & QUIET == QUIET,
        NanPattern::Value(v) => actual == v.bits,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected f64 {}, got {} ({actual:#018x})",
            describe_nan(expected, |v| format!(
                "{} ({:#018x})",
                f64::from_bits(v.bits),
                v.bits
            )),
            f64::from_bits(actual)
        ))
    }
}

fn describe_nan<T>(p: &NanPattern<T>, value: impl Fn(&T) -> String) -> String {
    match p {
        NanPattern::CanonicalNan => "nan:canonical".into(),
        NanPattern::ArithmeticNan => "nan:arithmetic".into(),
        NanPattern::Value(v) => value(v),
    }
}

fn match_v128(actual: u128, expected: &V128Pattern) -> Result<(), String> {
    let lanes = |bits: u32| -> Vec<u128> {
        let n = 128 / bits;
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        (0..n).map(|i| (actual >> (i * bits)) & mask).collect()
    };
    let int_lanes = |expected: Vec<u128>, bits: u32| -> Result<(), String> {
        let got = lanes(bits);
        if got == expected {
            Ok(())
        } else {
            Err(format!(
                "expected v128 i{bits} lanes {expected:#x?}, got {got:#x?}"
            ))
        }
    };
    match expected {
        V128Pattern::I8x16(v) => int_lanes(v.iter().map(|x| *x as u8 as u128).collect(), 8),
        V128Pattern::I16x8(v) => int_lanes(v.iter().map(|x| *x as u16 as u128).collect(), 16),
        V128Pattern::I32x4(v) => int_lanes(v.iter().map(|x| *x as u32 as u128).collect(), 32),
        V128Pattern::I64x2(v) => int_lanes(v.iter().map(|x| *x as u64 as u128).collect(), 64),
        V128Pattern::F32x4(v) => {
            for (i, (lane, e)) in lanes(32).into_iter().zip(v).enumerate() {
                match_f32(lane as u32, e).map_err(|m| format!("lane {i}: {m}"))?;
            }
            Ok(())
        }
        V128Pattern::F64x2(v) => {
            for (i, (lane, e)) in lanes(64).into_iter().zip(v).enumerate() {
                match_f64(lane as u64, e).map_err(|m| format!("lane {i}: {m}"))?;
            }
            Ok(())
        }
    }
}

/// Registers the spec interpreter's `spectest` module.
fn link_spectest(linker: &mut Linker<()>, store: &mut Store<()>) -> wasmtime::Result<()> {
    linker.func_wrap("spectest", "print", || {})?;
    linker.func_wrap("spectest", "print_i32", |_: i32| {})?;
    linker.func_wrap("spectest", "print_i64", |_: i64| {})?;
    linker.func_wrap("spectest", "print_f32", |_: f32| {})?;
    linker.func_wrap("spectest", "print_f64", |_: f64| {})?;
    linker.func_wrap("spectest", "print_i32_f32", |_: i32, _: f32| {})?;
    linker.func_wrap("spectest", "print_f64_f64", |_: f64, _: f64| {})?;
    let globals = [
        ("global_i32", ValType::I32, Val::I32(666)),
        ("global_i64", ValType::I64, Val::I64(666)),
        ("global_f32", ValType::F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", ValType::F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, ty, value) in globals {
        let global =
            wasmtime::Global::new(&mut *store, GlobalType::new(ty, Mutability::Const), value)?;
        linker.define(&mut *store, "spectest", name, global)?;
    }
    let table = Table::new(
        &mut *store,
        TableType::new(RefType::FUNCREF, 10, Some(20)),
        Ref::Func(None),
    )?;
    linker.define(&mut *store, "spectest", "table", table)?;
    if let Ok(table64) = Table::new(
        &mut *store,
        TableType::new64(RefType::FUNCREF, 10, Some(20)),
        Ref::Func(None),
    ) {
        linker.define(&mut *store, "spectest", "table64", table64)?;
    }
    let memory = Memory::new(&mut *store, MemoryType::new(1, Some(2)))?;
    linker.define(&mut *store, "spectest", "memory", memory)?;
    Ok(())
}
