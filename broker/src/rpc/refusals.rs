//! Counts the admin service's refusals of oversized messages. Tonic refuses a message
//! above the service's decoding limit before any of our code sees it, answering
//! OUT_OF_RANGE in the response headers (a trailers-only response), so the count is
//! taken from the response on its way out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tower_layer::Layer;
use tower_service::Service;

/// gRPC status code tonic answers a message above the decoding limit with (OUT_OF_RANGE).
const OUT_OF_RANGE: &str = "11";

#[derive(Debug, Clone)]
pub struct CountOversizedLayer {
    pub counter: Arc<AtomicU64>,
}

impl<S> Layer<S> for CountOversizedLayer {
    type Service = CountOversized<S>;

    fn layer(&self, inner: S) -> CountOversized<S> {
        CountOversized {
            inner,
            counter: self.counter.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CountOversized<S> {
    inner: S,
    counter: Arc<AtomicU64>,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for CountOversized<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Boxed<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let counter = self.counter.clone();
        Box::pin(async move {
            let response = response.await?;
            if response
                .headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == OUT_OF_RANGE.as_bytes())
            {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response)
        })
    }
}
