#![no_std]
// Empty: exists so that `cargo check --workspace` on the host has a target.
