//! One module per subcommand.

pub mod check;
pub mod inspect;
pub mod lower;
pub mod lower_memory64;
pub mod lower_multi_memory;
pub mod pack;
pub mod pages;
pub mod raise;
pub mod raise_memory64;
pub mod run;
