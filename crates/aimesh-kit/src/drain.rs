//! Ending open server streams when the drain starts.
//!
//! A graceful shutdown waits for every open call to end. Unary calls end by themselves; a
//! server stream (WatchJob, WatchJobs, WatchEvents, a streamed reply) may stay open for hours
//! and would hold the drain for the whole grace period, then be cut off without a status. The
//! [`DrainLayer`] wraps every response body: once the drain token is cancelled, a body whose
//! next message is not ready ends at that message boundary with `UNAVAILABLE` in its trailers,
//! which clients treat as "retry": a watcher reopens its stream on another replica and, as the
//! watch RPCs replay from the store, misses nothing. A body with data ready is never cut, so a
//! unary response already produced is always delivered whole.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::body::Body;
use tower::{Layer, Service};

/// The `grpc-message` a stream ends with when the server drains.
pub const DRAIN_MESSAGE: &str = "the server is shutting down: retry the call (another replica or \
                                 the restarted server will serve it)";

/// Wraps responses so that open streams end with `UNAVAILABLE` once `token` is cancelled.
#[derive(Clone)]
pub struct DrainLayer {
    token: CancellationToken,
}

impl DrainLayer {
    /// Ends streams when `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        Self { token }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainService {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The service of [`DrainLayer`].
#[derive(Clone)]
pub struct DrainService<S> {
    inner: S,
    token: CancellationToken,
}

impl<S, B> Service<http::Request<B>> for DrainService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let token = self.token.clone();
        Box::pin(async move {
            let response = response.await?;
            // A trailers-only response (an error status in the headers) has nothing to end.
            if response.headers().contains_key("grpc-status") {
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(DrainBody::new(body, token))))
        })
    }
}

/// A response body that ends with `UNAVAILABLE` trailers when the drain starts while it waits
/// for its next frame.
struct DrainBody {
    inner: Body,
    drain: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl DrainBody {
    fn new(inner: Body, token: CancellationToken) -> Self {
        Self {
            inner,
            drain: Box::pin(token.cancelled_owned()),
            ended: false,
        }
    }
}

/// The trailers of a stream ended by the drain.
fn drain_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "grpc-status",
        HeaderValue::from(tonic::Code::Unavailable as i32),
    );
    // Printable ASCII without `%`: a valid `grpc-message` as it is, with no percent-encoding.
    trailers.insert("grpc-message", HeaderValue::from_static(DRAIN_MESSAGE));
    trailers
}

impl HttpBody for DrainBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let last = match &frame {
                    None => true,
                    Some(Ok(frame)) => frame.is_trailers(),
                    Some(Err(_)) => true,
                };
                this.ended = last;
                Poll::Ready(frame)
            }
            Poll::Pending => match this.drain.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.ended = true;
                    Poll::Ready(Some(Ok(Frame::trailers(drain_trailers()))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    use super::*;

    fn stream_body(
        items: impl futures::Stream<Item = Result<Frame<Bytes>, tonic::Status>> + Send + 'static,
    ) -> Body {
        Body::new(http_body_util::StreamBody::new(items))
    }

    #[tokio::test]
    async fn a_waiting_stream_ends_unavailable_when_the_drain_starts() {
        let token = CancellationToken::new();
        let items = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"first")))])
            .chain(futures::stream::pending());
        let mut body = DrainBody::new(stream_body(items), token.clone());
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"first"));
        tokio::spawn({
            let token = token.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                token.cancel();
            }
        });
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "14");
        assert_eq!(trailers["grpc-message"], DRAIN_MESSAGE);
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_ready_response_is_delivered_whole_after_the_drain_started() {
        let token = CancellationToken::new();
        token.cancel();
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        let items = futures::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"reply"))),
            Ok(Frame::trailers(ok)),
        ]);
        let mut body = DrainBody::new(stream_body(items), token);
        let data = body.frame().await.unwrap().unwrap();
        assert_eq!(data.into_data().unwrap(), Bytes::from_static(b"reply"));
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert!(body.frame().await.is_none());
    }
}
