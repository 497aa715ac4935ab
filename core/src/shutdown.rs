//! Shutdown signals for [`Consumer::run`](crate::Consumer::run).

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: what a service under an orchestrator
/// receives when it is asked to stop.
///
/// If the signal handlers cannot be installed the error is logged and the future never
/// resolves (shut down through another future then, such as a cancellation token's
/// `cancelled_owned()`).
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
