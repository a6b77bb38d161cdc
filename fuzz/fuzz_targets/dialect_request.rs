#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certbind_fuzzing::dialect_request(data));
