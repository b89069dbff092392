//! Graceful shutdown for the long-running commands (`serve`, `api`, `projector`).

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Fires `shutdown` on SIGTERM or SIGINT; returns when it fired for any reason.
pub async fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("while installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("while installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the work in progress, then stopping"),
        _ = int.recv() => tracing::info!("SIGINT: finishing the work in progress, then stopping"),
        () = shutdown.cancelled() => return Ok(()),
    }
    shutdown.cancel();
    Ok(())
}
