//! A `trace --record` file, read as `analyze` reads it (strict and
//! --lenient, into the loop detector) and as `export` reads it (into its
//! histograms). The `export` target renders what the latter makes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{analyze, export::Data};
use spawnscope_fuzz::{assert_one_line, write};

fuzz_target!(|data: &[u8]| {
    let path = write("recording.jsonl", data);
    for lenient in [false, true] {
        match analyze::analyze(&path, lenient) {
            Ok(a) => {
                serde_json::to_string(&a).expect("an analysis serialises");
            }
            Err(e) => assert_one_line(&e.to_string()),
        }
    }
    if let Err(e) = Data::from_recording(&path) {
        assert_one_line(&e.to_string());
    }
});
