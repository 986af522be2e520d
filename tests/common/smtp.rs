//! A real SMTP server (aiosmtpd, from PyPI through tests/py/install.sh) on a free port of
//! 127.0.0.1, keeping what it receives in a Maildir; stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Smtp {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start() -> Smtp {
    let o =
        Command::new("bash").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/install.sh")).output().unwrap();
    assert!(o.status.success(), "installing aiosmtpd: {}", String::from_utf8_lossy(&o.stderr));
    let python = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path().join("mail"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Smtp { child, port, maildir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

impl Smtp {
    /// `[email]` for a config, through this server.
    pub fn config(&self) -> String {
        format!(
            "[email]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"daybook <daybook@example.com>\"\n",
            self.port
        )
    }

    /// The messages received so far, as text (soft line breaks of quoted-printable undone).
    pub fn received(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail/new");
        let mut out: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap().replace("=\n", "")).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Waits (bounded) until `n` messages are in; returns them.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{n} email(s) did not arrive within {secs} s: {got:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
