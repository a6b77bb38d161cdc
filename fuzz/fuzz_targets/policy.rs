#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certbind_fuzzing::policy_document(data));
