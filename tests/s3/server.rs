//! A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`), installed
//! once by tests/s3/install.sh under ~/.cache/daybook/moto, started once per test binary on a
//! free port of 127.0.0.1 and stopped when the test binary ends (a shell watching its stdin
//! kills it). One bucket; each test works under a prefix of its own.

use std::io::Read;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;

pub struct Server {
    pub endpoint: String,
    pub bucket: String,
    _child: Child,
    _stdin: ChildStdin,
}

pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(start)
}

fn start() -> Server {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3");
    let out = Command::new("bash")
        .arg(format!("{here}/install.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running tests/s3/install.sh");
    assert!(out.status.success(), "tests/s3/install.sh failed (it needs python3 with venv, and PyPI)");
    let moto = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & pid=$!; echo started; cat >/dev/null; kill $pid"#)
        .arg(&moto)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting moto_server");
    let stdin = child.stdin.take().unwrap();
    let mut first = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut first).expect("moto_server's shell");
    let endpoint = format!("http://127.0.0.1:{port}");
    // The vault's processes (children of the tests) and in-process vaults read these as AWS's
    // own tools do. Set once, before any test thread reads them.
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "daybook-test"),
        ("AWS_SECRET_ACCESS_KEY", "daybook-test-secret"),
    ] {
        // SAFETY: set once under the OnceLock, before any S3 test reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let bucket = "daybook-tests".to_string();
    let started = std::time::Instant::now();
    loop {
        // Creating the bucket is also the readiness probe (a bound, not a timing).
        match create_bucket(port, &bucket) {
            Ok(true) => break,
            _ if started.elapsed() > std::time::Duration::from_secs(60) => {
                panic!("moto_server did not answer on {endpoint} within 60 s")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    Server { endpoint, bucket, _child: child, _stdin: stdin }
}

/// `PUT /bucket` (moto takes it unsigned); true once the server says 200.
fn create_bucket(port: u16, bucket: &str) -> std::io::Result<bool> {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(c, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"))
}

fn store(bucket_and_prefix: &str) -> (Arc<dyn ObjectStore>, String) {
    let (bucket, prefix) = bucket_and_prefix.split_once('/').unwrap_or((bucket_and_prefix, ""));
    let s3 = AmazonS3Builder::from_env().with_bucket_name(bucket).build().unwrap();
    (Arc::new(s3), prefix.trim_matches('/').to_string())
}

/// Runs an object_store call on a runtime of its own (the tests' runtimes may be busy or
/// single-threaded).
fn block<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
        .join()
        .unwrap()
}

/// Every object under `bucket/prefix`, by its name below the prefix.
pub fn objects(bucket_and_prefix: &str) -> Vec<(String, Vec<u8>)> {
    server();
    let (s, prefix) = store(bucket_and_prefix);
    block(async move {
        use futures::TryStreamExt;
        let root = StorePath::from(prefix.as_str());
        let metas: Vec<_> = s.list(Some(&root)).try_collect().await.unwrap();
        let mut out = Vec::new();
        for m in metas {
            let bytes = s.get(&m.location).await.unwrap().bytes().await.unwrap().to_vec();
            let name = m.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap_or(m.location.as_ref());
            out.push((name.to_string(), bytes));
        }
        out
    })
}

pub fn put(bucket_and_prefix: &str, name: &str, bytes: Vec<u8>) {
    server();
    let (s, prefix) = store(bucket_and_prefix);
    let path = StorePath::from(format!("{prefix}/{name}"));
    block(async move { s.put(&path, bytes.into()).await.unwrap() });
}
