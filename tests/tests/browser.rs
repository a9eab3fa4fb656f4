//! The web UI in a real browser (Debian's chromium, driven by playwright-core
//! from `tests/browser/ui.mjs`) against two real nodes: uk-east serving
//! `--http`, ro-police syncing with it. `scripts/test.sh` installs chromium
//! and runs `npm ci` in `tests/browser`; without them this test fails and
//! says so.

use std::path::PathBuf;
use std::process::Command;

use crate::network::{Server, federation};
use crate::util::{PASSPHRASE, TestDir, bin, peer_of};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

#[test]
fn the_web_ui_end_to_end() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "no /usr/bin/chromium: run scripts/test.sh, which installs Debian's chromium"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "no playwright-core in tests/browser: run scripts/test.sh (npm ci in tests/browser)"
    );
    let t = TestDir::new("browser");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    for (name, role) in [
        ("sam", "supervisor"),
        ("ana", "analyst"),
        ("bob", "analyst"),
        ("ada", "admin"),
    ] {
        crate::http::add_user(a, name, role, crate::http::PW);
    }
    let sb = Server::start(b, &[]);
    let sa = Server::start_http(a, &[&sb.addr]);
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("ui.mjs"))
        .current_dir(browser_dir())
        .env("BASE_URL", format!("http://{}", sa.http.as_ref().unwrap()))
        .env("CASESYNC_BIN", bin())
        .env("CASESYNC_PASSPHRASE", PASSPHRASE)
        .env("A_DIR", &a.dir)
        .env("B_DIR", &b.dir)
        .env("B_PEER", peer_of(b))
        .env("PASSWORD", crate::http::PW)
        .env("SHOTS", &shots)
        .output()
        .expect("run node tests/browser/ui.mjs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nserve (A) log:\n{}",
        sa.log()
    );
    assert!(stdout.contains("every step passed"), "{stdout}");
    for shot in ["case-page.png", "chart.png"] {
        assert!(
            shots.join(shot).metadata().unwrap().len() > 10_000,
            "{shot}"
        );
    }
}
