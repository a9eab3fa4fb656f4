//! The web front end (`serve --http`) as a browser and an attacker reach it:
//! raw HTTP/1.1 over 127.0.0.1 to a real `serve` process, accounts made with
//! the real `casesync user` commands.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::network::Server;
use crate::util::{Node, TestDir, sqlite3};

/// One HTTP response.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The API's error code.
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A raw HTTP/1.1 request (`Connection: close`), so a test can send what no
/// well-behaved client would.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect to --http");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A logged-in browser: its cookie and CSRF token.
struct Browser {
    addr: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    fn login(addr: &str, name: &str, password: &str) -> Browser {
        let r = try_login(addr, name, password);
        assert_eq!(
            r.status,
            200,
            "login {name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let set = r
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(set.starts_with("__Host-casesync="), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        Browser {
            addr: addr.to_string(),
            cookie,
            csrf: r.json()["csrf"].as_str().unwrap().to_string(),
        }
    }

    /// Creates a case through the API; returns its id.
    fn create_case(&self, title: &str) -> String {
        let r = self.send("POST", "/api/cases", &json!({"title": title}));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().unwrap().to_string()
    }

    fn get(&self, path: &str) -> Resp {
        request(&self.addr, "GET", path, &[("Cookie", &self.cookie)], b"")
    }

    /// A change, with the session's CSRF token and this host as its origin.
    fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.send_with(method, path, body, &[])
    }

    fn send_with(&self, method: &str, path: &str, body: &Value, extra: &[(&str, &str)]) -> Resp {
        let origin = format!("http://{}", self.addr);
        let mut h = vec![
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/json"),
        ];
        h.extend_from_slice(extra);
        request(&self.addr, method, path, &h, body.to_string().as_bytes())
    }
}

fn try_login(addr: &str, name: &str, password: &str) -> Resp {
    request(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        json!({"name": name, "password": password})
            .to_string()
            .as_bytes(),
    )
}

/// `user add NAME --role ROLE` with `password` on stdin.
pub(crate) fn add_user(node: &Node, name: &str, role: &str, password: &str) {
    let mut c = node.command(&["user", "add", name, "--role", role]);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) const PW: &str = "a long test password";

/// A node in a federation with a supervisor, two analysts and an admin, and
/// its `serve --http`.
fn agency(t: &TestDir) -> (Node, Server) {
    let n = t.node("uk-east");
    n.init("uk-east", "NCA", "GB");
    n.cmd(&["federation", "create", "--name", "JIT"]).ok();
    for (name, role) in [
        ("sam", "supervisor"),
        ("ana", "analyst"),
        ("bob", "analyst"),
        ("ada", "admin"),
    ] {
        add_user(&n, name, role, PW);
    }
    let s = Server::start_http(&n, &[]);
    (n, s)
}

fn person(name: &str) -> Value {
    json!({"type": "person", "fields": {"name": name}})
}

#[test]
fn accounts_sessions_and_need_to_know() {
    let t = TestDir::new("http-need-to-know");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();

    // No session, a made-up session: 401 with the API's error shape.
    let r = request(&addr, "GET", "/api/cases", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "unauthenticated"));
    let r = request(
        &addr,
        "GET",
        "/api/cases",
        &[("Cookie", "__Host-casesync=forged")],
        b"",
    );
    assert_eq!(r.status, 401);

    let sam = Browser::login(&addr, "sam", PW);
    let r = sam.send("POST", "/api/cases", &json!({"title": "Op Lantern"}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let case = r.json()["id"].as_str().unwrap().to_string();
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/records"),
        &person("Marin Dobre"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rid = r.json()["id"].as_str().unwrap().to_string();
    // The same validation message as the CLI.
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/records"),
        &json!({"type": "person", "fields": {}}),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let cli = n.cmd(&["record", "add", &case, "--type", "person"]).err();
    let api = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(cli.contains(&api), "CLI: {cli}\nAPI: {api}");

    // An analyst sees nothing of a case not assigned to them, by any route.
    let ana = Browser::login(&addr, "ana", PW);
    assert_eq!(ana.get("/api/cases").json(), json!([]));
    for path in [
        format!("/api/cases/{case}"),
        format!("/api/cases/{case}/records"),
        format!("/api/records/{rid}"),
    ] {
        let r = ana.get(&path);
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"), "{path}");
    }
    let r = ana.send(
        "POST",
        &format!("/api/cases/{case}/records"),
        &person("Ana's guess"),
    );
    assert_eq!(r.status, 403);
    let r = ana.send(
        "PATCH",
        &format!("/api/records/{rid}"),
        &json!({"set": {"alias": "X"}}),
    );
    assert_eq!(r.status, 403);
    // Nor may an analyst create a case or assign herself one.
    assert_eq!(
        ana.send("POST", "/api/cases", &json!({"title": "Mine"}))
            .status,
        403
    );
    assert_eq!(
        ana.send(
            "PUT",
            &format!("/api/cases/{case}/assignments/ana"),
            &json!({})
        )
        .status,
        403
    );
    assert_eq!(n.list(&case).len(), 1, "a refused request stored nothing");

    // Assigned by the supervisor: she sees it and works on it; bob still not.
    let r = sam.send(
        "PUT",
        &format!("/api/cases/{case}/assignments/ana"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let listed = ana.get("/api/cases").json();
    assert_eq!(listed[0]["id"], case.as_str());
    assert_eq!(
        ana.get(&format!("/api/records/{rid}")).json()["fields"]["name"],
        "Marin Dobre"
    );
    let r = ana.send(
        "PATCH",
        &format!("/api/records/{rid}"),
        &json!({"set": {"alias": "Marinel"}}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let bob = Browser::login(&addr, "bob", PW);
    assert_eq!(bob.get(&format!("/api/records/{rid}")).status, 403);
    // An admin manages accounts and trust, and reads no case.
    let ada = Browser::login(&addr, "ada", PW);
    assert_eq!(ada.get("/api/cases").json(), json!([]));
    assert_eq!(ada.get(&format!("/api/records/{rid}")).status, 403);
    assert_eq!(
        ada.send("POST", "/api/cases", &json!({"title": "x"}))
            .status,
        403
    );
    assert_eq!(ada.get("/api/users").status, 200);
    assert_eq!(sam.get("/api/users").status, 403);

    // Every look is the person's in the audit log; an analyst's audit page
    // shows her own entries only.
    let log = n.json(&["audit", "list"]);
    let by = |who: &str, action: &str, outcome: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["operator"] == who && e["action"] == action && e["outcome"] == outcome)
    };
    assert!(by("ana", "record.show", "ok"));
    assert!(by("ana", "record.show", "refused"));
    assert!(by("ana", "record.edit", "ok"));
    assert!(by("sam", "case.assign", "ok"));
    assert!(by("bob", "record.show", "refused"));
    let mine = ana.get("/api/audit").json();
    assert!(!mine.as_array().unwrap().is_empty());
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|e| e["operator"] == "ana"),
        "{mine}"
    );

    // A disabled account's sessions end at once (the CLI, while serve runs).
    n.cmd(&["user", "disable", "ana"]).ok();
    assert_eq!(ana.get("/api/cases").status, 401);
    assert_eq!(try_login(&addr, "ana", PW).status, 403);
    // An expired session: idle past its limit (the clock moved in the store).
    sqlite3(
        &n.db_path(),
        "UPDATE sessions SET seen_ms = seen_ms - 31 * 60 * 1000 WHERE user_id = (SELECT id FROM users WHERE name = 'bob')",
    );
    assert_eq!(bob.get("/api/cases").status, 401);
    // And one past its absolute limit, however active.
    let fresh = Browser::login(&addr, "sam", PW);
    sqlite3(
        &n.db_path(),
        "UPDATE sessions SET created_ms = created_ms - 13 * 60 * 60 * 1000 WHERE seen_ms = (SELECT MAX(seen_ms) FROM sessions)",
    );
    assert_eq!(fresh.get("/api/me").status, 401);
    // Logout ends the session.
    assert_eq!(sam.send("POST", "/api/logout", &json!({})).status, 200);
    assert_eq!(sam.get("/api/cases").status, 401);
}

#[test]
fn changes_need_the_csrf_token_and_this_origin() {
    let t = TestDir::new("http-csrf");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let body = json!({"title": "Op Forged"}).to_string();
    let origin = format!("http://{addr}");
    for (what, headers, code) in [
        (
            "no token",
            vec![
                ("Cookie", sam.cookie.as_str()),
                ("Content-Type", "application/json"),
            ],
            "csrf",
        ),
        (
            "a wrong token",
            vec![
                ("Cookie", sam.cookie.as_str()),
                ("X-CSRF-Token", "guess"),
                ("Content-Type", "application/json"),
            ],
            "csrf",
        ),
        (
            "another site's Origin",
            vec![
                ("Cookie", sam.cookie.as_str()),
                ("X-CSRF-Token", sam.csrf.as_str()),
                ("Origin", "http://evil.example"),
                ("Content-Type", "application/json"),
            ],
            "cross_origin",
        ),
        (
            "a cross-site fetch",
            vec![
                ("Cookie", sam.cookie.as_str()),
                ("X-CSRF-Token", sam.csrf.as_str()),
                ("Origin", origin.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
                ("Content-Type", "application/json"),
            ],
            "cross_origin",
        ),
    ] {
        let r = request(&addr, "POST", "/api/cases", &headers, body.as_bytes());
        assert_eq!((r.status, r.code().as_str()), (403, code), "{what}");
    }
    // Another user's CSRF token does not fit this session.
    let ana = Browser::login(&addr, "ana", PW);
    let mixed = Browser {
        addr: addr.clone(),
        cookie: sam.cookie.clone(),
        csrf: ana.csrf.clone(),
    };
    assert_eq!(
        mixed
            .send("POST", "/api/cases", &json!({"title": "x"}))
            .code(),
        "csrf"
    );
    // A login from another site is refused too.
    let r = request(
        &addr,
        "POST",
        "/api/login",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        json!({"name": "sam", "password": PW})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        n.json(&["case", "list"]),
        json!([]),
        "no refused request created a case"
    );
}

#[test]
fn passwords_are_locked_after_five_failures_and_attempts_are_audited() {
    let t = TestDir::new("http-brute");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    for i in 0..5 {
        let r = try_login(&addr, "bob", &format!("guess number {i}"));
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
        assert_eq!(r.json()["error"]["message"], "wrong user name or password");
    }
    // Locked: the right password does not open it now.
    let r = try_login(&addr, "bob", PW);
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{}",
        r.json()
    );
    // An unknown name gets the same answer as a wrong password.
    assert_eq!(
        try_login(&addr, "nobody", PW).json()["error"]["message"],
        "wrong user name or password"
    );
    let log = n.json(&["audit", "list", "--action", "user.login"]);
    let refused = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "refused" && e["operator"] == "bob")
        .count();
    assert!(refused >= 6, "{log}");
    // An admin's new password clears the lock.
    let mut c = n.command(&["user", "passwd", "bob"]);
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"another long password\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(try_login(&addr, "bob", "another long password").status, 200);
    // One address may try only so many logins a minute, whatever the names.
    let limited = (0..30).any(|i| try_login(&addr, &format!("u{i}"), "x").status == 429);
    assert!(limited, "no 429 after 30 more logins from one address");
}

#[test]
fn bodies_paths_and_headers() {
    let t = TestDir::new("http-hostile");
    let (_n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    // Oversized body: refused before it is read whole.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let r = request(
        &addr,
        "POST",
        "/api/cases",
        &[
            ("Cookie", &sam.cookie),
            ("X-CSRF-Token", &sam.csrf),
            ("Content-Type", "application/json"),
        ],
        &big,
    );
    assert_eq!(r.status, 413);
    // Malformed JSON: a client error, not a 5xx.
    let r = request(
        &addr,
        "POST",
        "/api/cases",
        &[
            ("Cookie", &sam.cookie),
            ("X-CSRF-Token", &sam.csrf),
            ("Content-Type", "application/json"),
        ],
        b"{not json",
    );
    assert!((400..500).contains(&r.status), "{}", r.status);
    // Paths outside the embedded files: 404, never a file of the machine.
    for p in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/app.js/../../../etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/api/../../etc/passwd",
    ] {
        let r = request(&addr, "GET", p, &[], b"");
        assert!(r.status == 404 || r.status == 400, "{p}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"), "{p}");
    }
    // Headers: the page loads only its own files and is never framed; the
    // API's answers are not cached.
    let page = request(&addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    let body = String::from_utf8_lossy(&page.body);
    assert!(body.contains("<script src=\"/app.js\""), "{body}");
    assert!(!body.contains("<script>"), "no inline script");
    for r in [&page, &sam.get("/api/cases")] {
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(
        sam.get("/api/cases").header("cache-control"),
        Some("no-store")
    );
    assert!(
        request(&addr, "GET", "/app.js", &[], b"")
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[test]
fn justification_is_asked_for_and_recorded() {
    let t = TestDir::new("http-justification");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let r = sam.send(
        "POST",
        "/api/cases",
        &json!({"title": "Op Ledger", "require_justification": true}),
    );
    let case = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/api/cases/{case}/records");
    let r = sam.send("POST", &path, &person("Elena Ilie"));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requires a justification")
    );
    let r = sam.send_with(
        "POST",
        &path,
        &person("Elena Ilie"),
        &[("X-Justification", "tasking 2026/118")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let log = n.json(&["audit", "list", "--action", "record.add"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["operator"] == "sam"
                && e["justification"] == "tasking 2026/118"
                && e["outcome"] == "ok"),
        "{log}"
    );
}

#[test]
fn the_front_end_serves_loopback_only_without_tls() {
    let t = TestDir::new("http-bind");
    let n = t.node("uk-east");
    n.init("uk-east", "NCA", "GB");
    n.cmd(&["federation", "create", "--name", "JIT"]).ok();
    let e = n.cmd(&["serve", "--http", "0.0.0.0:0"]).error_line();
    assert!(e.contains("not a loopback address"), "{e}");
    let e = n.cmd(&["serve", "--http", "nonsense"]).error_line();
    assert!(e.contains("is not an address"), "{e}");
}

#[test]
fn the_openapi_document_describes_every_route() {
    let t = TestDir::new("http-openapi");
    let (_n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let r = request(&addr, "GET", "/api/openapi.json", &[], b"");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/login",
        "/api/cases",
        "/api/cases/{case}/records",
        "/api/records/{record}/history",
        "/api/cases/{case}/chart",
        "/api/audit",
        "/api/users",
        "/api/status",
    ] {
        assert!(paths.contains_key(p), "{p} is not in the document");
    }
    // Every operation it names is served: without a session, each answers
    // 401 (or, for the login, 4xx on an empty body), never "no such route".
    for (path, ops) in paths {
        let concrete = path
            .replace("{case}", "0192f0c1-7c1e-4b3a-9c1d-2f4e5a6b7c8d")
            .replace("{record}", "0192f0c1-7c1e-4b3a-9c1d-2f4e5a6b7c8e")
            .replace("{user}", "ana");
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            let r = request(&addr, &method.to_uppercase(), &concrete, &[], b"");
            assert!(
                (400..500).contains(&r.status) && r.status != 404 && r.status != 405,
                "{method} {path}: {}",
                r.status
            );
        }
    }
}

/// schemathesis (PyPI; `scripts/test.sh` installs it) generates requests from
/// the OpenAPI document, valid and not, as a supervisor and as an admin: no
/// answer is a 5xx, the node keeps serving, and its store stays whole.
/// `CASESYNC_API_FUZZ_EXAMPLES` sets the examples per operation (CI: 15, a
/// few hundred requests in all; `scripts/soak.sh`: 1000).
#[test]
fn generated_requests_never_get_a_server_error() {
    let examples = std::env::var("CASESYNC_API_FUZZ_EXAMPLES").unwrap_or_else(|_| "15".into());
    let t = TestDir::new("http-fuzz");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let case = sam.create_case("Op Fuzz");
    sam.send(
        "POST",
        &format!("/api/cases/{case}/records"),
        &person("Marin Dobre"),
    );
    let ada = Browser::login(&addr, "ada", PW);
    let mut generated = 0;
    for who in [&sam, &ada] {
        let out = std::process::Command::new("schemathesis")
            .args(["run", &format!("http://{addr}/api/openapi.json")])
            .args([
                "--checks",
                "not_a_server_error",
                "--max-examples",
                &examples,
            ])
            .args(["--seed", "7", "--no-shrink", "--workers", "1"])
            // These end the session the run depends on, or never end.
            .args(["--exclude-path", "/api/logout"])
            .args(["--exclude-path", "/api/users/{user}/disable"])
            .args(["--exclude-path", "/api/events"])
            .args(["-H", &format!("Cookie: {}", who.cookie)])
            .args(["-H", &format!("X-CSRF-Token: {}", who.csrf)])
            .args(["-H", &format!("Origin: http://{addr}")])
            .output()
            .expect("run schemathesis (scripts/test.sh installs it with pip)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis found a failure:\n{text}\n{}\nserve log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log()
        );
        generated += text
            .lines()
            .find(|l| l.contains(" generated, "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0);
    }
    eprintln!("schemathesis: {generated} generated requests, none answered 5xx");
    assert!(generated >= 100, "only {generated} requests were generated");
    // Still serving, its store whole.
    assert_eq!(sam.get("/api/me").status, 200);
    crate::util::check_store(&n, "generated requests");
}

/// `curl` (it speaks TLS; the raw client above does not) with `args`.
fn curl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl")
}

#[test]
fn tls_serves_https_beyond_loopback_and_nothing_in_the_clear() {
    let t = TestDir::new("http-tls");
    let n = t.node("uk-east");
    n.init("uk-east", "NCA", "GB");
    n.cmd(&["federation", "create", "--name", "JIT"]).ok();
    add_user(&n, "sam", "supervisor", PW);
    let (cert, key) = (t.join("cert.pem"), t.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=casesync-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    // A bad certificate file is refused before anything starts.
    let e = n
        .cmd(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--http-tls-cert",
            k,
            "--http-tls-key",
            k,
        ])
        .error_line();
    assert!(e.contains("TLS certificate"), "{e}");
    // With TLS, an address beyond loopback is allowed.
    let s = Server::start_with(
        &n,
        &[],
        &[],
        Some(&[
            "--http",
            "0.0.0.0:0",
            "--http-tls-cert",
            c,
            "--http-tls-key",
            k,
        ]),
    );
    let port = s
        .http
        .as_ref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let base = format!("https://127.0.0.1:{port}");
    let login = curl(&[
        "--cacert",
        c,
        "-i",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &json!({"name": "sam", "password": PW}).to_string(),
        &format!("{base}/api/login"),
    ]);
    let text = String::from_utf8_lossy(&login.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("__Host-casesync=") && text.contains("Secure"),
        "{text}"
    );
    // Nothing is served in the clear on the TLS port.
    let plain = curl(&[&format!("http://127.0.0.1:{port}/api/openapi.json")]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("openapi"));
    // And a client that does not trust the certificate gets nothing.
    let untrusted = curl(&[&format!("{base}/api/openapi.json")]);
    assert!(!untrusted.status.success());
}

#[test]
fn members_imports_trust_and_passwords_through_the_api() {
    let t = TestDir::new("http-members");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let ada = Browser::login(&addr, "ada", PW);
    let sam = Browser::login(&addr, "sam", PW);
    // The admin enrolls a partner by its card; the partner joins with the token.
    let ro = t.node("ro-police");
    ro.init("ro-police", "IGPR", "RO");
    let card = crate::util::card_of(&ro);
    assert_eq!(
        sam.send("POST", "/api/trust/invite", &json!({"card": card}))
            .status,
        403
    );
    let r = ada.send("POST", "/api/trust/invite", &json!({"card": card}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    ro.cmd(&["federation", "join", r.json()["token"].as_str().unwrap()])
        .ok();
    let trust = sam.get("/api/trust").json();
    assert_eq!(trust["nodes"].as_array().unwrap().len(), 2, "{trust}");
    // The supervisor adds it to a case, changes its role, removes it.
    let case = sam.create_case("Op Ledger");
    let peer = crate::util::peer_of(&ro);
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/members"),
        &json!({"member": peer, "role": "contributor"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = sam.send(
        "PUT",
        &format!("/api/cases/{case}/members/{peer}/role"),
        &json!({"role": "lead"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        sam.get(&format!("/api/cases/{case}")).json()["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/members/{peer}/remove"),
        &json!({"reason": "left the team"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // An analyst may do none of it, even assigned.
    sam.send(
        "PUT",
        &format!("/api/cases/{case}/assignments/ana"),
        &json!({}),
    );
    let ana = Browser::login(&addr, "ana", PW);
    let r = ana.send(
        "POST",
        &format!("/api/cases/{case}/members"),
        &json!({"member": peer, "role": "observer"}),
    );
    assert_eq!(r.status, 403);

    // Import, all or nothing, bounded.
    let post_raw = |b: &Browser, path: &str, body: &[u8]| {
        request(
            &addr,
            "POST",
            path,
            &[
                ("Cookie", &b.cookie),
                ("X-CSRF-Token", &b.csrf),
                ("Content-Type", "text/plain"),
            ],
            body,
        )
    };
    let lines = "{\"type\": \"person\", \"fields\": {\"name\": \"Ana Popa\"}}\n{\"type\": \"phone\", \"fields\": {\"number\": \"+40 722 000 111\"}}\n";
    let r = post_raw(&ana, &format!("/api/cases/{case}/import"), lines.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["records"], 2);
    let bad = "{\"type\": \"person\", \"fields\": {\"name\": \"B\"}}\n{\"type\": \"person\", \"fields\": {}}\n";
    let r = post_raw(&ana, &format!("/api/cases/{case}/import"), bad.as_bytes());
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{}",
        r.json()
    );
    let csv = "type,name\nperson,Ion Ionescu\n";
    let r = post_raw(
        &ana,
        &format!("/api/cases/{case}/import?format=csv"),
        csv.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let huge = vec![b'\n'; 17 * 1024 * 1024];
    assert_eq!(
        post_raw(&ana, &format!("/api/cases/{case}/import"), &huge).status,
        413
    );
    assert_eq!(
        n.list(&case).len(),
        3,
        "two imported, one refused whole, one CSV row"
    );

    // Passwords: a person changes their own; an admin anyone's (a one-time
    // one), which ends that account's sessions.
    let r = ana.send(
        "POST",
        "/api/users/ana/password",
        &json!({"password": "ana's new long password"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Her sessions ended with the change, this one too.
    assert_eq!(ana.get("/api/me").status, 401);
    let ana = Browser::login(&addr, "ana", "ana's new long password");
    assert_eq!(
        ana.send("POST", "/api/users/sam/password", &json!({}))
            .status,
        403
    );
    let r = ada.send("POST", "/api/users/sam/password", &json!({}));
    let otp = r.json()["one_time_password"].as_str().unwrap().to_string();
    assert_eq!(otp.len(), 20);
    assert_eq!(sam.get("/api/me").status, 401);
    assert_eq!(try_login(&addr, "sam", &otp).status, 200);
}

/// Pages come from a cache of the case's opened views: it never shows a page
/// older than the store, whoever changed it (another process, an edit, an
/// import).
#[test]
fn a_page_shows_every_change_whoever_made_it() {
    let t = TestDir::new("http-pages");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let case = sam.create_case("Op Pages");
    let page = |q: &str| sam.get(&format!("/api/cases/{case}/records?{q}")).json();
    assert_eq!(page("")["total"], 0);
    let rid = n.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    assert_eq!(page("")["total"], 1, "a record added by the CLI");
    n.cmd(&["record", "edit", &rid, "--field", "name=Marin DOBRE"])
        .ok();
    assert_eq!(
        page("")["records"][0]["fields"]["name"],
        "Marin DOBRE",
        "an edit"
    );
    for i in 0..120 {
        sam.send(
            "POST",
            &format!("/api/cases/{case}/records"),
            &person(&format!("P{i:03}")),
        );
    }
    let p = page("sort=summary&limit=50&offset=100&type=person");
    assert_eq!(p["total"], 121);
    assert_eq!(p["records"].as_array().unwrap().len(), 21);
    // "marin dobre" sorts before "p000": the 101st is P099.
    assert_eq!(p["records"][0]["fields"]["name"], "P099");
    let found = page("q=dobre");
    assert_eq!(found["total"], 1);
    assert_eq!(
        page("limit=100000")["records"].as_array().unwrap().len(),
        121,
        "a page holds at most 500"
    );
}

/// `search` (CLI and API) finds a selector written another way across cases,
/// marks a hit held in more than one case, shows a person only the cases they
/// may see, finds what arrived from a partner, and audits the query.
#[test]
fn search_finds_a_selector_across_cases_only_where_the_person_may_look() {
    let t = TestDir::new("http-search");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let (a, b) = (sam.create_case("Op Lantern"), sam.create_case("Op Ledger"));
    n.add(&a, "phone", &[("number", "+40 722 123 456")], &[]);
    n.add(&b, "phone", &[("number", "0040722123456")], &[]);
    n.add(
        &b,
        "person",
        &[("name", "Ștefan DOBRE"), ("dob", "1984-03-02")],
        &[],
    );
    let found = |who: &Browser, q: &str| {
        let r = who.get(&format!(
            "/api/search?q={}",
            q.replace(' ', "%20").replace('+', "%2B")
        ));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json().as_array().unwrap().clone()
    };
    let hits = found(&sam, "+40 (722) 123-456");
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(
        hits.iter()
            .all(|h| h["also_in"].as_array().unwrap().len() == 1),
        "{hits:?}"
    );
    // Names: case, diacritics and word order folded; a prefix finds too.
    assert_eq!(found(&sam, "dobre stefan")[0]["summary"], "Ștefan DOBRE");
    assert_eq!(found(&sam, "Ştef")[0]["summary"], "Ștefan DOBRE");
    // An analyst sees only her case, and no hint of the other.
    sam.send(
        "PUT",
        &format!("/api/cases/{a}/assignments/ana"),
        &json!({}),
    );
    let ana = Browser::login(&addr, "ana", PW);
    let hits = found(&ana, "0040 722 123 456");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["case"], a.as_str());
    assert_eq!(hits[0]["also_in"], json!([]));
    assert!(found(&ana, "dobre").is_empty());
    // The CLI marks a hit held in another case.
    let out = n.cmd(&["search", "+40722123456"]).ok();
    assert_eq!(out.matches("ALSO IN").count(), 2, "{out}");
    // A record that arrived from a partner is indexed too.
    let ro = t.node("ro-police");
    ro.init("ro-police", "IGPR", "RO");
    let token = n
        .cmd(&["federation", "invite", &crate::util::card_of(&ro)])
        .ok();
    ro.cmd(&["federation", "join", token.trim()]).ok();
    n.cmd(&[
        "case",
        "member",
        "add",
        &a,
        &crate::util::peer_of(&ro),
        "--role",
        "contributor",
    ])
    .ok();
    let file = t.join("a.bundle");
    n.cmd(&[
        "bundle",
        "export",
        "--out",
        file.to_str().unwrap(),
        "--case",
        &a,
        "--for",
        &crate::util::peer_of(&ro),
    ])
    .ok();
    ro.cmd(&["bundle", "import", file.to_str().unwrap()]).ok();
    let out = ro.cmd(&["search", "0722 123 456"]).ok();
    assert!(out.contains("Op Lantern"), "{out}");
    // Each search is a consultation in the audit log, the query in it.
    let log = n.json(&["audit", "list", "--action", "search"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["operator"] == "ana"
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("0040 722 123 456")),
        "{log}"
    );
}

#[test]
fn evidence_downloads_verified_with_images_inline_and_never_html() {
    let t = TestDir::new("http_evidence");
    let (n, server) = agency(&t);
    let addr = server.http.clone().unwrap();
    let case = n.create_case("Op Lantern");
    let png: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &[7u8; 3 << 19]].concat();
    let photo = n
        .cmd(&[
            "evidence",
            "add",
            &case,
            t.write("cctv still.png", &png).to_str().unwrap(),
        ])
        .ok();
    let page = b"<script>alert(1)</script>".to_vec();
    let html = n
        .cmd(&[
            "evidence",
            "add",
            &case,
            t.write("saved.html", &page).to_str().unwrap(),
        ])
        .ok();
    let sam = Browser::login(&addr, "sam", PW);
    let file =
        |b: &Browser, id: &str, q: &str| b.get(&format!("/api/records/{}/file{q}", id.trim()));

    // A download: the bytes, checked, as an attachment.
    let r = file(&sam, &photo, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, png);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"cctv still.png\"")
    );
    assert_eq!(
        r.header("x-content-sha256"),
        Some(casesync_crypto::hash::sha256(&png).to_hex().as_str())
    );
    // Shown in the page: an image yes, HTML never (it stays a download).
    let r = file(&sam, &photo, "?inline=true");
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    let r = file(&sam, &html, "?inline=true");
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // An analyst not assigned the case gets nothing of it.
    let ana = Browser::login(&addr, "ana", PW);
    let r = file(&ana, &photo, "");
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_ne!(r.body, png);

    // A damaged piece ends the download short of the file.
    let pieces = crate::util::files_under(&n.dir.join("pieces"));
    let victim = pieces
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > (1 << 20))
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(victim, &bytes).unwrap();
    let r = file(&sam, &photo, "");
    assert!(
        r.status != 200 || r.body.len() < png.len(),
        "a damaged file was sent whole"
    );

    // Each download is the person's, in the custody trail.
    let trail = n.json(&["evidence", "custody", photo.trim()]);
    let opened: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "evidence.open")
        .collect();
    assert!(
        opened
            .iter()
            .any(|e| e["operator"] == "sam" && e["outcome"] == "ok"),
        "{trail}"
    );
    assert!(
        opened
            .iter()
            .any(|e| e["operator"] == "ana" && e["outcome"] == "refused"),
        "{trail}"
    );
    assert!(
        opened
            .iter()
            .any(|e| e["operator"] == "sam" && e["outcome"] == "refused"),
        "{trail}"
    );
}

/// Issue 19 through the API (what the web UI calls): a four-eyes request
/// listed to a second supervisor, approved there, refused to its own
/// requester, and denied; the originator's regrade, provenance and H2
/// consent.
#[test]
fn approvals_regrades_provenance_and_consent_through_the_api() {
    let t = TestDir::new("http-governance");
    let (n, s) = agency(&t);
    add_user(&n, "sue", "supervisor", PW);
    let addr = s.http.clone().unwrap();
    let ada = Browser::login(&addr, "ada", PW);
    let sam = Browser::login(&addr, "sam", PW);
    let sue = Browser::login(&addr, "sue", PW);
    let ro = t.node("ro-police");
    ro.init("ro-police", "IGPR", "RO");
    let r = ada.send(
        "POST",
        "/api/trust/invite",
        &json!({"card": crate::util::card_of(&ro)}),
    );
    ro.cmd(&["federation", "join", r.json()["token"].as_str().unwrap()])
        .ok();
    let case = sam.create_case("Op Ledger");
    // An H2 record of this node's, then a regrade by its originator.
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/records"),
        &json!({"type": "person", "fields": {"name": "Source"}, "handling": "H2"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rid = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["handling"], "H2");
    let r = sam.send(
        "POST",
        &format!("/api/records/{rid}/regrade"),
        &json!({"grading": "3x5x2:1AP", "reason": ""}),
    );
    assert_eq!(r.status, 400, "a regrade needs its reason");
    let r = sam.send(
        "POST",
        &format!("/api/records/{rid}/regrade"),
        &json!({"grading": "3x5x2:1AP", "handling": "H3:ask DS Reid", "reason": "source met"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["handling"], "H3:ask DS Reid");
    assert_eq!(r.json()["grading"], "3x5x2:1AP");
    let me = sam.get("/api/me").json();
    assert_eq!(me["node"], crate::util::peer_of(&n).as_str(), "{me}");
    let p = sam.get(&format!("/api/records/{rid}/provenance"));
    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
    assert_eq!(p.json()["holders"][0]["state"], "originator");
    // Four eyes on adding a member.
    n.cmd(&["approvals", "policy", "--require", "member-add"])
        .ok();
    let peer = crate::util::peer_of(&ro);
    let add = |who: &Browser| {
        who.send(
            "POST",
            &format!("/api/cases/{case}/members"),
            &json!({"member": peer, "role": "contributor"}),
        )
    };
    let r = add(&sam);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("request 1 is filed"));
    let listed = sue.get("/api/approvals").json();
    assert_eq!(listed[0]["id"], 1, "{listed}");
    assert_eq!(listed[0]["requester"], "sam", "{listed}");
    let r = sam.send("POST", "/api/approvals/1/approve", &json!({}));
    assert_eq!(r.status, 400, "nobody approves their own request");
    let r = sue.send("POST", "/api/approvals/1/approve", &json!({}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["done"], "member-added", "{}", r.json());
    let r = sue.send("POST", "/api/approvals/1/deny", &json!({"reason": "late"}));
    assert_eq!(r.status, 400, "decided once");
    // Consent for the new member (the record is no longer H2, but the
    // consent is this node's word all the same).
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/consents"),
        &json!({"peer": peer, "reason": "JIT annex"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["org"], "IGPR");
    // A second request, denied with a reason.
    let other = t.node("de-bka");
    other.init("de-bka", "BKA", "DE");
    let r = ada.send(
        "POST",
        "/api/trust/invite",
        &json!({"card": crate::util::card_of(&other)}),
    );
    other
        .cmd(&["federation", "join", r.json()["token"].as_str().unwrap()])
        .ok();
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/members"),
        &json!({"member": crate::util::peer_of(&other), "role": "observer"}),
    );
    assert_eq!(r.status, 400);
    let r = sue.send(
        "POST",
        "/api/approvals/2/deny",
        &json!({"reason": "not in the JIT"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let listed = sue.get("/api/approvals").json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == 2 && a["state"] == "denied"),
        "{listed}"
    );
    let audit = n.json(&["audit", "list", "--action", "approval.approve"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operator"] == "sue" && e["outcome"] == "ok"),
        "{audit}"
    );
    // The case's policy, from this (lead) node, shown on the case.
    let r = sam.send(
        "PUT",
        &format!("/api/cases/{case}/policy"),
        &json!({"four_eyes": ["enroll"], "originator_erases": true}),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = sam.send(
        "PUT",
        &format!("/api/cases/{case}/policy"),
        &json!({"four_eyes": ["erase"], "originator_erases": true}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let shown = sam.get(&format!("/api/cases/{case}")).json();
    assert_eq!(
        shown["policy"],
        json!({"four_eyes": ["erase"], "originator_erases": true}),
        "{shown}"
    );
}

/// Erasure, closing, archiving and retention review through the API, as
/// the CLI does them; the review under libfaketime, eleven years on.
#[test]
fn erasure_closing_and_review_through_the_api() {
    let t = TestDir::new("http-erasure");
    let (n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let sam = Browser::login(&addr, "sam", PW);
    let ana = Browser::login(&addr, "ana", PW);
    let case = sam.create_case("Op Ledger");
    let add = |name: &str| {
        let r = sam.send("POST", &format!("/api/cases/{case}/records"), &person(name));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().unwrap().to_string()
    };
    let gone = add("Erased Person");
    let kept = add("Kept Person");
    // Pages in a stable order, one record each, then an empty page.
    let page = |after: Option<&str>| {
        let q = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let v = sam
            .get(&format!("/api/cases/{case}/records/after?limit=1{q}"))
            .json();
        (
            v["records"].as_array().unwrap().len(),
            v["next_after"].as_str().map(String::from),
        )
    };
    let (n1, after1) = page(None);
    let (n2, after2) = page(after1.as_deref());
    assert_eq!((n1, n2), (1, 1));
    let mut both = vec![after1.clone().unwrap(), after2.clone().unwrap()];
    both.sort();
    let mut want = vec![gone.clone(), kept.clone()];
    want.sort();
    assert_eq!(both, want);
    assert_eq!(page(after2.as_deref()), (0, None));
    let r = sam.send(
        "POST",
        &format!("/api/records/{gone}/erase"),
        &json!({"reason": " "}),
    );
    assert_eq!(r.status, 400, "an erasure needs its reason");
    let r = ana.send(
        "POST",
        &format!("/api/records/{gone}/erase"),
        &json!({"reason": "x"}),
    );
    assert!(
        r.status == 403 || r.status == 400,
        "an analyst does not erase: {}",
        r.status
    );
    let r = sam.send(
        "POST",
        &format!("/api/records/{gone}/erase"),
        &json!({"reason": "unlawfully held"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["requested"], false);
    let st = sam.get(&format!("/api/records/{gone}/erasure")).json();
    assert_eq!(st["members"][0]["state"], "erased", "{st}");
    assert_eq!(st["reason"], "unlawfully held", "{st}");
    assert_eq!(sam.get(&format!("/api/records/{gone}")).status, 404);
    // Closed, archived, listed only with ?all=true.
    assert_eq!(
        sam.send(
            "POST",
            &format!("/api/cases/{case}/archive"),
            &json!({"archive": true})
        )
        .status,
        400,
        "only a closed case is archived"
    );
    let r = sam.send("POST", &format!("/api/cases/{case}/close"), &json!({}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = sam.send(
        "POST",
        &format!("/api/cases/{case}/archive"),
        &json!({"archive": true}),
    );
    assert_eq!(
        r.json()["archived"],
        true,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(sam.get("/api/cases").json().as_array().unwrap().is_empty());
    assert_eq!(
        sam.get("/api/cases?all=true")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    drop(s);

    // Eleven years on, the kept record is due; retained, it is not.
    let lib = crate::clock::libfaketime();
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME", "+4018d"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let s = Server::start_with(&n, &[], &env, Some(&["--http", "127.0.0.1:0"]));
    let sam = Browser::login(s.http.as_deref().unwrap(), "sam", PW);
    let due = sam.get("/api/review/due").json();
    let due = due.as_array().unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["record"], kept.as_str());
    let r = sam.send(
        "POST",
        &format!("/api/records/{kept}/review"),
        &json!({"decision": "keep", "reason": "x"}),
    );
    assert_eq!(r.status, 400);
    let r = sam.send(
        "POST",
        &format!("/api/records/{kept}/review"),
        &json!({"decision": "retain", "reason": "trial pending"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"], "retain");
    assert!(
        sam.get("/api/review/due")
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let audit = n
        .json(&["audit", "list", "--action", "review.retain"])
        .to_string();
    assert!(audit.contains("trial pending"), "{audit}");
}

/// The federation's two-admin policy from the admin page's API: set it,
/// ask (a request token in the refusal), and approve another admin node's
/// request.
#[test]
fn two_admin_nodes_through_the_api() {
    let t = TestDir::new("http-two-admins");
    let (_n, s) = agency(&t);
    let addr = s.http.clone().unwrap();
    let ada = Browser::login(&addr, "ada", PW);
    let eu = t.node("europol");
    eu.init("europol", "Europol", "NL");
    let r = ada.send(
        "POST",
        "/api/trust/invite",
        &json!({"card": crate::util::card_of(&eu), "admin": true}),
    );
    eu.cmd(&["federation", "join", r.json()["token"].as_str().unwrap()])
        .ok();
    let r = ada.send("POST", "/api/trust/policy", &json!({"two_admins": true}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ada.get("/api/trust").json()["two_admins"], true);
    // The serving node lets the new admin in once its allow list catches up.
    crate::network::eventually(60, "europol syncs the policy", || {
        eu.cmd(&["sync", "--once", "--peer", &s.addr])
            .status
            .success()
    });
    // Alone, this node only asks.
    let ro = t.node("ro-police");
    ro.init("ro-police", "IGPR", "RO");
    let r = ada.send(
        "POST",
        "/api/trust/invite",
        &json!({"card": crate::util::card_of(&ro)}),
    );
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("needs two admins"), "{message}");
    let own = message
        .split_whitespace()
        .find(|w| w.starts_with("csreq1."))
        .unwrap()
        .to_string();
    let r = ada.send("POST", "/api/trust/second", &json!({"token": own}));
    assert_eq!(r.status, 400, "not its own");
    // The other admin node asks; this one approves, and the new node joins.
    let line = eu
        .cmd(&["federation", "invite", &crate::util::card_of(&ro)])
        .error_line();
    let theirs = line
        .split_whitespace()
        .find(|w| w.starts_with("csreq1."))
        .unwrap()
        .to_string();
    let r = ada.send("POST", "/api/trust/second", &json!({"token": theirs}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["done"], "enrolled");
    ro.cmd(&["federation", "join", r.json()["token"].as_str().unwrap()])
        .ok();
    let nodes = ada.get("/api/trust").json()["nodes"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(nodes, 3);
}
