//! Serving a router on a bound listener until `shutdown` resolves (mini-redis's shape: tests
//! bind `127.0.0.1:0`, the binary binds the configured address).

use std::future::Future;

pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
