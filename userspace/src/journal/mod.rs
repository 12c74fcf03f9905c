//! systemd's journal files, read directly (see systemd's
//! JOURNAL_FILE_FORMAT): what `postmortem` and the start-up look at the
//! journal work from.
//!
//! The reader hands out [`Fields`]: one journal entry, with its fields
//! looked up by name. The analyses are written against the trait, so they
//! are tested on fixtures without journal files.

/// One journal entry, as the analyses see it.
pub trait Fields {
    /// `__REALTIME_TIMESTAMP`: microseconds since the Unix epoch.
    fn realtime_us(&self) -> u64;
    /// `__MONOTONIC_TIMESTAMP`: microseconds since the entry's boot.
    fn monotonic_us(&self) -> u64;
    /// `_BOOT_ID`, as 16 bytes.
    fn boot_id(&self) -> [u8; 16];
    /// The value of field `name` (e.g. `"MESSAGE"`), as stored: bytes,
    /// not necessarily UTF-8. The first value when a field repeats.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// A number naming the stored value of field `name`, the same for
    /// every entry that shares that value within one read (journald stores
    /// each distinct `FIELD=value` once): a key to cache work done on a
    /// value, such as masking the numbers of a message. None when the
    /// field is absent.
    fn value_id(&self, name: &str) -> Option<u64>;
}
