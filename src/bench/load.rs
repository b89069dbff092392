//! A small HTTP/1.1 load generator for loopback: a fixed number of keep-alive connections,
//! each sending a request and reading its whole answer before the next (closed loop), on its
//! own single-threaded runtime (like `wrk -t1`), so it never queues behind the server's tasks.
//! Every request's latency is kept; the p99 is read from the sorted samples.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Makes the bytes of the `n`th request of connection `connection`.
pub type MakeRequest = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with any other status.
    pub bad_status: u64,
    pub elapsed: Duration,
    /// Latency of every answered request, microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0–1) of the latencies, milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies_us, q)
    }
}

/// The `q` quantile of sorted microsecond samples, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[i]) / 1000.0
}

/// `connections` connections to `address`, each in a closed loop for `duration`.
pub async fn closed_loop(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<LoadResult> {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("while starting the load generator's runtime")?;
        runtime.block_on(async move {
            // Connect every connection before the clock starts.
            let mut streams = Vec::with_capacity(connections);
            for _ in 0..connections {
                streams.push(connect(address).await?);
            }
            let started = Instant::now();
            let deadline = started + duration;
            let mut tasks = tokio::task::JoinSet::new();
            for (c, stream) in streams.into_iter().enumerate() {
                let make = make.clone();
                tasks.spawn(async move {
                    let mut conn = Connection::new(stream);
                    let mut result = LoadResult::default();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        let request = make(c, n);
                        n += 1;
                        let sent = Instant::now();
                        let status = conn.exchange(&request).await?;
                        record(&mut result, status, sent.elapsed());
                    }
                    anyhow::Ok(result)
                });
            }
            let mut total = LoadResult::default();
            while let Some(done) = tasks.join_next().await {
                let r = done.context("a load connection panicked")??;
                total.ok += r.ok;
                total.bad_status += r.bad_status;
                total.latencies_us.extend(r.latencies_us);
            }
            total.elapsed = started.elapsed();
            total.latencies_us.sort_unstable();
            Ok(total)
        })
    })
    .await
    .context("the load generator panicked")?
}

pub fn record(result: &mut LoadResult, status: u16, latency: Duration) {
    if (200..300).contains(&status) {
        result.ok += 1;
    } else {
        result.bad_status += 1;
    }
    result
        .latencies_us
        .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
}

pub async fn connect(address: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("while connecting to {address}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One keep-alive HTTP/1.1 connection: a request out, its whole answer in.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// The last answer's body.
    pub body: Vec<u8>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(16 << 10),
            body: Vec::new(),
        }
    }

    /// Sends `request` and reads the answer; returns its status (the body is in `self.body`).
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream
            .write_all(request)
            .await
            .context("while sending a request")?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(&self.buffer, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).context("a non-UTF-8 head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in {head:?}"))?;
        let mut length = None;
        let mut chunked = false;
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding")
                    && value.eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        self.buffer.drain(..head_end);
        self.body.clear();
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buffer, b"\r\n") {
                        break i;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buffer[..line_end])?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .with_context(|| format!("a bad chunk size {size_text:?}"))?;
                while self.buffer.len() < line_end + 2 + size + 2 {
                    self.fill().await?;
                }
                self.body
                    .extend_from_slice(&self.buffer[line_end + 2..line_end + 2 + size]);
                self.buffer.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.unwrap_or(0);
            while self.buffer.len() < length {
                self.fill().await?;
            }
            self.body.extend(self.buffer.drain(..length));
        }
        Ok(status)
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .context("while reading an answer")?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A GET request.
pub fn get(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

/// A POST of a JSON body.
pub fn post_json(path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_samples() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&samples, 0.99), 99.0);
        assert_eq!(quantile_ms(&samples, 0.5), 50.0);
        assert_eq!(quantile_ms(&samples, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.99).is_nan());
    }
}
