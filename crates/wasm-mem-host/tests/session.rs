//! Sessions: budgets enforced during the run (memory.grow gives -1 past
//! them), the report's figures checked against what the module did, traps,
//! imported memories, and a Rust program built for wasm32-wasip1.

#[path = "guests/support.rs"]
mod support;

use wasm_mem::manifest::Manifest;
use wasm_mem_host::{Budget, Error, MemoryReport, Outcome, RunConfig, Session};
use wasmtime::{Trap, Val};

fn config(budget: Budget) -> RunConfig {
    RunConfig {
        budget,
        inherit_stdio: false,
        ..RunConfig::default()
    }
}

fn session(wat: &str, budget: Budget) -> Session {
    Session::new(wat.as_bytes(), &config(budget)).expect("instantiate")
}

/// Call `name` and return its single integer result.
fn call(s: &mut Session, name: &str, args: &[i64]) -> i64 {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match s.invoke(name, &args).unwrap() {
        Outcome::Returned(values) => match values.as_slice() {
            [Val::I32(x)] => i64::from(*x),
            [Val::I64(x)] => *x,
            other => panic!("unexpected results {other:?}"),
        },
        Outcome::Exited(code) => panic!("exited {code}"),
    }
}

fn memory(s: &mut Session, index: usize) -> MemoryReport {
    s.report().memories[index].clone()
}

const GROW: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size)))"#;

#[test]
fn grow_past_the_budget_gets_minus_one_and_is_reported() {
    let mut s = session(GROW, Budget::none().with(0, 4));
    assert_eq!(call(&mut s, "grow", &[2]), 1);
    assert_eq!(call(&mut s, "grow", &[2]), -1, "5 pages > budget 4");
    assert_eq!(
        call(&mut s, "size", &[]),
        3,
        "a refused grow changes nothing"
    );
    assert_eq!(call(&mut s, "grow", &[1]), 3);
    assert_eq!(call(&mut s, "grow", &[1]), -1);
    assert_eq!(
        call(&mut s, "grow", &[0]),
        4,
        "growing by 0 always succeeds"
    );
    let m = memory(&mut s, 0);
    assert_eq!((m.initial_pages, m.final_pages, m.peak_pages), (1, 4, 4));
    assert_eq!(m.final_bytes, 4 * 65536);
    assert_eq!((m.grows, m.refused_by_budget, m.refused_by_max), (2, 2, 0));
    assert_eq!(m.largest_refused_pages, Some(5));
    assert_eq!((m.budget_pages, m.max_pages), (Some(4), None));
    assert_eq!(s.report().unattributed_grows, 0);
    // The host's own view of the type shows the budget as the maximum.
    let view = s.memory(0).unwrap();
    let ty = view.memory().unwrap().ty(s.store());
    assert_eq!(ty.maximum(), Some(4));
}

#[test]
fn without_a_budget_the_module_runs_unchanged() {
    let mut s = session(GROW, Budget::none());
    assert_eq!(call(&mut s, "grow", &[100]), 1);
    let m = memory(&mut s, 0);
    assert_eq!((m.final_pages, m.grows, m.refused_by_budget), (101, 1, 0));
    // Only the memory is exported already: nothing was rewritten at all.
    let original = wat::parse_str(GROW).unwrap();
    assert_eq!(s.prepared().module, original);
}

#[test]
fn module_maximum_refusals_are_told_apart() {
    let mut s = session(
        r#"(module (memory 1 3)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        Budget::none().with(0, 10),
    );
    assert_eq!(call(&mut s, "grow", &[5]), -1);
    assert_eq!(call(&mut s, "grow", &[2]), 1);
    let m = memory(&mut s, 0);
    assert_eq!(
        (m.final_pages, m.refused_by_budget, m.refused_by_max),
        (3, 0, 1)
    );
    assert_eq!(m.max_pages, Some(3));
}

#[test]
fn same_sized_memories_with_different_budgets() {
    // Both memories start at one page with no maximum: the limiter callback
    // cannot tell them apart by size, yet each keeps its own budget.
    let wat = r#"(module
        (memory $a 1)
        (memory $b 1)
        (memory $c 1)
        (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
        (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0)))
        (func (export "grow_c") (param i32) (result i32) (memory.grow $c (local.get 0))))"#;
    let mut s = session(wat, Budget::none().with(0, 2).with(1, 8));
    assert_eq!(call(&mut s, "grow_b", &[3]), 1);
    assert_eq!(call(&mut s, "grow_a", &[3]), -1);
    assert_eq!(call(&mut s, "grow_a", &[1]), 1);
    assert_eq!(call(&mut s, "grow_b", &[4]), 4);
    assert_eq!(call(&mut s, "grow_b", &[1]), -1);
    assert_eq!(call(&mut s, "grow_c", &[20]), 1);
    let report = s.report();
    let pages: Vec<_> = report.memories.iter().map(|m| m.final_pages).collect();
    assert_eq!(pages, [2, 8, 21]);
    let refused: Vec<_> = report
        .memories
        .iter()
        .map(|m| m.refused_by_budget)
        .collect();
    assert_eq!(refused, [1, 1, 0]);
    let grows: Vec<_> = report.memories.iter().map(|m| m.grows).collect();
    assert_eq!(grows, [1, 2, 1]);
    assert_eq!(report.unattributed_grows, 0);
}

#[test]
fn memory64_budget() {
    let mut s = session(
        r#"(module (memory i64 2)
            (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0))))"#,
        Budget::none().with(0, 3),
    );
    assert_eq!(call(&mut s, "grow", &[2]), -1);
    assert_eq!(call(&mut s, "grow", &[1]), 2);
    // A delta that would wrap a 64-bit page count is refused, not wrapped.
    assert_eq!(call(&mut s, "grow", &[-1]), -1);
    let m = memory(&mut s, 0);
    assert!(m.memory64);
    assert_eq!((m.final_pages, m.grows), (3, 1));
    assert!(m.refused_by_budget >= 1);
}

#[test]
fn shared_memory_budget_and_custom_pages() {
    let mut s = session(
        r#"(module
            (memory $s 1 10 shared)
            (memory $p 16 (pagesize 1))
            (func (export "grow_s") (param i32) (result i32) (memory.grow $s (local.get 0)))
            (func (export "grow_p") (param i32) (result i32) (memory.grow $p (local.get 0))))"#,
        Budget::none().with(0, 3).with(1, 20),
    );
    assert_eq!(call(&mut s, "grow_s", &[5]), -1);
    assert_eq!(call(&mut s, "grow_s", &[2]), 1);
    assert_eq!(call(&mut s, "grow_p", &[5]), -1, "21 one-byte pages > 20");
    assert_eq!(call(&mut s, "grow_p", &[4]), 16);
    let report = s.report();
    let shared = &report.memories[0];
    assert!(shared.shared && !shared.growth_tracked);
    assert_eq!(
        (shared.final_pages, shared.max_pages, shared.budget_pages),
        (3, Some(10), Some(3))
    );
    let bytes = &report.memories[1];
    assert_eq!(bytes.page_size, 1);
    assert_eq!(
        (
            bytes.final_pages,
            bytes.final_bytes,
            bytes.refused_by_budget
        ),
        (20, 20, 1)
    );
    assert_eq!(bytes.largest_refused_pages, Some(21));
}

#[test]
fn imported_memory_is_created_under_the_budget() {
    let mut s = session(
        r#"(module
            (import "env" "memory" (memory 1))
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        Budget::none().with(0, 2),
    );
    assert_eq!(call(&mut s, "grow", &[2]), -1);
    assert_eq!(call(&mut s, "grow", &[1]), 1);
    let m = memory(&mut s, 0);
    assert!(m.imported);
    assert_eq!((m.final_pages, m.grows, m.refused_by_budget), (2, 1, 1));
}

#[test]
fn budgets_from_the_manifest() {
    let manifest =
        Manifest::parse("[memory]\nmax-pages = 2\n[memory.1]\npages = 3\n", false).unwrap();
    let budget = Budget::from_manifest(&manifest);
    assert_eq!(
        (budget.get(0), budget.get(1), budget.get(2)),
        (Some(2), Some(3), None)
    );
    let unbounded =
        Manifest::parse("[memory]\nmax-pages = \"none\"\nmin-pages = 1\n", false).unwrap();
    assert!(Budget::from_manifest(&unbounded).is_empty());
}

#[test]
fn impossible_budgets_are_refused_before_running() {
    let e = Session::new(GROW.as_bytes(), &config(Budget::none().with(0, 0)))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Budget(_)), "{e}");
    assert!(e.to_string().contains("starts at 1 pages"), "{e}");
    let e = Session::new(GROW.as_bytes(), &config(Budget::none().with(3, 1)))
        .err()
        .unwrap();
    assert!(e.to_string().contains("memory 3 does not exist"), "{e}");
    let e = Session::new(b"(module (func", &config(Budget::none()))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Module(_)), "{e}");
    let e = Session::new(
        b"(module (import \"env\" \"f\" (func)))",
        &config(Budget::none()),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("env::f"), "{e}");
}

#[test]
fn traps_are_errors_with_a_trap_code() {
    let mut s = session(
        r#"(module (memory 1)
            (func (export "boom") (unreachable))
            (func (export "oob") (result i32) (i32.load (i32.const 65535))))"#,
        Budget::none(),
    );
    let e = s.invoke("boom", &[]).unwrap_err();
    assert_eq!(e.trap(), Some(Trap::UnreachableCodeReached));
    let e = s.invoke("oob", &[]).unwrap_err();
    assert_eq!(e.trap(), Some(Trap::MemoryOutOfBounds));
    assert!(matches!(
        s.invoke("boom", &["1".into()]),
        Err(Error::Argument { .. })
    ));
    assert!(matches!(s.invoke("nope", &[]), Err(Error::NoFunction(_))));
    // A trap in the start function surfaces from Session::new.
    let e = Session::new(
        b"(module (func $s unreachable) (start $s))",
        &config(Budget::none()),
    )
    .err()
    .unwrap();
    assert_eq!(e.trap(), Some(Trap::UnreachableCodeReached));
}

#[test]
fn invoke_arguments_are_checked_not_wrapped() {
    let mut s = session(
        r#"(module
            (func (export "id32") (param i32) (result i32) (local.get 0))
            (func (export "id64") (param i64) (result i64) (local.get 0)))"#,
        Budget::none(),
    );
    assert_eq!(call(&mut s, "id32", &[-1]), -1);
    assert_eq!(call(&mut s, "id32", &[0xffff_ffff]), -1);
    assert!(s.invoke("id32", &["4294967296".into()]).is_err());
    assert!(s.invoke("id32", &["-2147483649".into()]).is_err());
    assert_eq!(call(&mut s, "id64", &[i64::MIN]), i64::MIN);
    match s.invoke("id64", &["0xffffffffffffffff".into()]).unwrap() {
        Outcome::Returned(v) => assert!(matches!(v[..], [Val::I64(-1)])),
        other => panic!("{other:?}"),
    }
    assert!(s.invoke("id64", &["18446744073709551616".into()]).is_err());
}

#[test]
fn rust_wasi_program_prints_allocates_and_exits() {
    let Some(guests) = support::guests() else {
        return;
    };
    let module = std::fs::read(&guests.command).unwrap();
    let run = |budget: Budget, args: &[&str]| {
        let mut config = config(budget);
        config.args = std::iter::once("wasi-guest")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let mut s = Session::new(&module, &config).unwrap();
        let outcome = s.run_command().unwrap();
        (outcome, s.report())
    };
    // Unbounded: 4 MiB allocated, exit code passed through.
    let (outcome, report) = run(Budget::none(), &["4", "7"]);
    assert!(matches!(outcome, Outcome::Exited(7)), "{outcome:?}");
    let m = &report.memories[0];
    assert!(
        m.final_pages >= m.initial_pages + 64,
        "4 MiB = 64 pages: {m:?}"
    );
    assert!(m.grows >= 1 && m.refused_by_budget == 0);
    // Under a budget of initial + 40 pages, 8 MiB cannot fit: the allocator
    // sees memory.grow fail and the program exits 42.
    let initial = m.initial_pages;
    let (outcome, report) = run(Budget::none().with(0, initial + 40), &["8", "0"]);
    assert!(matches!(outcome, Outcome::Exited(42)), "{outcome:?}");
    let m = &report.memories[0];
    assert!(m.final_pages <= initial + 40);
    assert!(m.refused_by_budget >= 1, "{m:?}");
    assert!(m.largest_refused_pages.unwrap() > initial + 40);
}
