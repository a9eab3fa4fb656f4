#![no_main]

// A panic the code under test contains (Automerge's, in casesync-schema) is
// not a crash; any other panic aborts (see casesync_fuzz::driver).
libfuzzer_sys::fuzz_target!(init: casesync_fuzz::driver::quiet_panics(), |data: &[u8]| {
    casesync_fuzz::driver::abort_on_panic(casesync_fuzz::registry_op, data)
});
