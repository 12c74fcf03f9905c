//! spawnscope's userspace: loading the probe, naming cgroups, reporting.
pub mod analyze;
pub mod btf;
pub mod caps;
pub mod cgroupfs;
pub mod cli;
pub mod detect;
pub mod events;
pub mod export;
pub mod kernel;
pub mod layout;
pub mod memory;
pub mod mempress;
pub mod output;
pub mod record;
pub mod report;
pub mod trace;
pub mod unit;
