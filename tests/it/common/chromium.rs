//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`, enough to load a
//! page, evaluate JavaScript, type and click, for the operators' page test. No crate: the
//! pipe protocol is JSON messages ended by a NUL byte on fds 3 (to the browser) and 4 (from
//! it); a `sh` wrapper wires two FIFOs to those fds, so no unsafe fd juggling is needed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian's package puts it; `ROUTER_CHROMIUM` names another binary.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    next_id: u64,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// One page (tab) of the browser, as a flattened DevTools session.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts headless Chromium, or prints why the test is skipped and returns `None`.
    pub fn launch() -> Option<Self> {
        let binary = std::env::var_os("ROUTER_CHROMIUM")
            .map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
        if !binary.is_file() {
            eprintln!(
                "SKIPPED: no Chromium at {} (CI installs it: apt-get install chromium; or set ROUTER_CHROMIUM)",
                binary.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (to, from) = (dir.path().join("to"), dir.path().join("from"));
        for fifo in [&to, &from] {
            let ok = Command::new("mkfifo").arg(fifo).status().unwrap().success();
            assert!(ok, "mkfifo {}", fifo.display());
        }
        let log = dir.path().join("chromium.log");
        let profile = dir.path().join("profile");
        // Without the background-networking flags, a closed network makes Chromium fail.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<"$CDP_TO" 4>"$CDP_FROM""#)
            .arg(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .env("CDP_TO", &to)
            .env("CDP_FROM", &from)
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Opening a FIFO blocks until the other end opens it: the shell opens `to`, then `from`.
        let to_browser = File::options().write(true).open(&to).unwrap();
        let from_file = File::open(&from).unwrap();
        let (tx, from_browser) = channel();
        // Ends when the browser closes its end of the pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_file);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).unwrap_or(0) > 0 {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(message) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Some(Self {
            child,
            to_browser,
            from_browser,
            next_id: 1,
            log,
            _dir: dir,
        })
    }

    /// Sends one command and waits for its answer (events in between are ignored).
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.from_browser.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "no answer to {method} ({e}); Chromium's log:\n{}",
                    self.log_text()
                )
            });
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method} failed: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab.
    pub fn open(&mut self, url: &str) -> Page {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        Page {
            session: attached["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    /// Evaluates `expression` in `page` (promises awaited) and returns its JSON value.
    pub fn eval(&mut self, page: &Page, expression: &str) -> Value {
        self.try_eval(page, expression)
            .unwrap_or_else(|e| panic!("{expression} threw: {e}"))
    }

    /// Like `eval`, with a thrown exception as the error.
    fn try_eval(&mut self, page: &Page, expression: &str) -> Result<Value, Value> {
        let result = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        match result.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` until `done` accepts its value; returns that value. A throw
    /// counts as not yet (the page may still be loading).
    pub fn wait_for(
        &mut self,
        page: &Page,
        expression: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.try_eval(page, expression);
            if let Ok(value) = &value {
                if done(value) {
                    return value.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{expression} never got there; last: {value:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A real mouse click (pressed, released) in the middle of the element `selector`.
    pub fn click(&mut self, page: &Page, selector: &str) {
        let rect = self.eval(
            page,
            &format!(
                "(() => {{ const e = document.querySelector({sel}); e.scrollIntoView(); const r = e.getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()",
                sel = json!(selector)
            ),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(&page.session),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Focuses `selector` and types `text` into it, as a keyboard would.
    pub fn type_into(&mut self, page: &Page, selector: &str, text: &str) {
        self.eval(
            page,
            &format!("document.querySelector({}).focus()", json!(selector)),
        );
        self.call(
            Some(&page.session),
            "Input.insertText",
            json!({"text": text}),
        );
    }

    /// Saves `page` as a PNG at 1200 px wide (the README's picture of the page).
    pub fn screenshot(&mut self, page: &Page, path: &std::path::Path) {
        use base64::Engine as _;
        self.call(
            Some(&page.session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
