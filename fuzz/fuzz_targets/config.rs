//! The configuration loader (agent/src/config.rs `parse`, what `load` and
//! `check-config` run on a file's text): any text is either a checked
//! configuration or a list of problems that can be printed, and a checked
//! one's warnings can be computed at any time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plainsight::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(c) => {
            for now_ns in [i64::MIN, 0, 1_790_000_000_000_000_000, i64::MAX] {
                let _ = config::warnings(&c, now_ns);
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(!p.to_string().is_empty());
            }
        }
    }
});
