//! The sentinel's state file, loaded as at start-up, then used as the
//! sentinel uses a restored state: logged, bounded, tracked, rendered as
//! the /metrics exposition, and saved again (which must load back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spawnscope::{
    clock,
    sentinel::{
        expo::{self, Health, Labels},
        state,
        track::{TrackConfig, Tracker},
    },
};
use spawnscope_fuzz::assert_one_line;

fuzz_target!(|data: &[u8]| {
    let mut s = match state::parse(data) {
        Ok(s) => s,
        Err(why) => return assert_one_line(&why),
    };
    clock::date(s.since_unix);
    s.bound_units();
    let saved = serde_json::to_vec(&s).expect("a state serialises");
    if let Err(why) = state::parse(&saved) {
        panic!("a saved state does not load again: {why}");
    }
    let tracker = Tracker::new(TrackConfig::default(), s);
    let findings = tracker.findings();
    for top_units in [1, 50] {
        expo::render(
            &tracker.state,
            &findings,
            top_units,
            &Health::default(),
            &mut Labels::default(),
        );
    }
});
