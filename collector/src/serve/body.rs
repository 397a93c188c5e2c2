//! Request bodies as they arrive. Their bytes are reserved against one budget shared by every
//! connection, so that what request bodies hold in memory is bounded by construction: the
//! declared length (`Content-Length`, or a gRPC message's length prefix) at once when it is
//! known, each frame's bytes when it is not. A body that does not fit fails at once with
//! [`BodyError::OverBudget`], which the receivers answer with their retryable refusal. A body
//! must also bring `min_rate × window` bytes in every window, or it fails with
//! [`BodyError::TooSlow`] and its connection is closed. A body that has brought nothing when
//! its first window ends fails with [`BodyError::NotStarted`], refused retryably with its
//! connection kept (HTTP/1 closes it after the answer, the body unread): its client is behind
//! on its own sending, and closing an HTTP/2 connection would fail every other request on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::connection::{CloseReason, Connection};
use crate::events::InflightBytes;
use crate::metrics::{Registry, Reported};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body that has brought no byte for this long while the budget is exhausted is given up,
/// so that a client that stalls cannot keep others out until its rate window ends.
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// Bytes that request bodies may hold at once, and the bodies holding them.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: AtomicU64,
    epoch: std::time::Instant,
    bodies: Mutex<Bodies>,
}

/// The bodies being read, in slots reused as bodies come and go, so that forgetting one does
/// not search the others.
#[derive(Debug, Default)]
struct Bodies {
    slots: Vec<Option<Arc<Progress>>>,
    free: Vec<usize>,
}

/// How far along one body is, for the budget to find stalled ones.
#[derive(Debug, Default)]
struct Progress {
    /// Its slot in [`Bodies`].
    slot: usize,
    /// Milliseconds since the budget's epoch when the body last brought bytes.
    last_ms: AtomicU64,
    given_up: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            bodies: Mutex::new(Bodies::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn try_reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if !reserved {
            self.give_up_stalled();
        }
        reserved
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn register(&self) -> Arc<Progress> {
        let mut bodies = lock(&self.bodies);
        let slot = bodies.free.pop().unwrap_or(bodies.slots.len());
        let progress =
            Arc::new(Progress { slot, last_ms: AtomicU64::new(self.now_ms()), ..Progress::default() });
        match bodies.slots.get_mut(slot) {
            Some(free) => *free = Some(progress.clone()),
            None => bodies.slots.push(Some(progress.clone())),
        }
        progress
    }

    fn forget(&self, progress: &Arc<Progress>) {
        let mut bodies = lock(&self.bodies);
        if let Some(slot) = bodies.slots.get_mut(progress.slot) {
            *slot = None;
            bodies.free.push(progress.slot);
        }
    }

    /// The budget is exhausted: bodies that brought nothing for [`STALLED_AFTER`] are woken to
    /// fail, which releases what they hold (the refused request's retry then fits).
    fn give_up_stalled(&self) {
        let now = self.now_ms();
        let stalled_ms = STALLED_AFTER.as_millis() as u64;
        for body in lock(&self.bodies).slots.iter().flatten() {
            if now.saturating_sub(body.last_ms.load(Ordering::Relaxed)) < stalled_ms {
                continue;
            }
            if !body.given_up.swap(true, Ordering::AcqRel) {
                if let Some(waker) = lock(&body.waker).take() {
                    waker.wake();
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Reported for Budget {
    fn report(&self, registry: &Registry) {
        registry.emit(InflightBytes { used: self.used(), limit: self.limit });
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the collector is receiving too many request bytes at once, retry later")]
    OverBudget,
    #[error("the request body arrived slower than the minimum transfer rate")]
    TooSlow,
    #[error("no byte of the request body arrived within the body window, retry later")]
    NotStarted,
    #[error("cannot read the request body: {0}")]
    Read(BoxError),
}

impl BodyError {
    /// The body error behind `error`, however many layers wrapped it.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(found) = error.downcast_ref::<BodyError>() {
                return Some(found);
            }
            current = error.source();
        }
        None
    }
}

/// What every body of a listener is held to.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    pub budget: Arc<Budget>,
    /// The most one body reserves for its declared length (the receivers refuse larger ones).
    pub max_bytes: u64,
    pub window: Duration,
    pub min_rate: u64,
}

/// gRPC's message prefix: a compression flag and a 4-byte big-endian length.
const GRPC_PREFIX: usize = 5;

/// A request body under the budget and the rate floor; releases its reservation when dropped.
pub struct Metered<B> {
    inner: B,
    limits: BodyLimits,
    connection: Arc<Connection>,
    /// Read a gRPC length prefix to learn the declared length.
    grpc: bool,
    prefix: Vec<u8>,
    started: bool,
    reserved: u64,
    received: u64,
    window_bytes: u64,
    deadline: Pin<Box<Sleep>>,
    progress: Option<Arc<Progress>>,
}

impl<B> Metered<B> {
    pub fn new(inner: B, limits: BodyLimits, connection: Arc<Connection>, grpc: bool) -> Self {
        let deadline = Box::pin(tokio::time::sleep(limits.window));
        Self {
            inner,
            limits,
            connection,
            grpc,
            prefix: Vec::new(),
            started: false,
            reserved: 0,
            received: 0,
            window_bytes: 0,
            deadline,
            progress: None,
        }
    }

    /// Reserves up to `total` bytes for this body in all.
    fn reserve_up_to(&mut self, total: u64) -> Result<(), BodyError> {
        let more = total.saturating_sub(self.reserved);
        if more == 0 {
            return Ok(());
        }
        if !self.limits.budget.try_reserve(more) {
            return Err(BodyError::OverBudget);
        }
        self.reserved += more;
        Ok(())
    }

    fn arrived(&mut self, data: &Bytes) -> Result<(), BodyError> {
        if self.grpc && self.prefix.len() < GRPC_PREFIX {
            let wanted = (GRPC_PREFIX - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..wanted]);
            if self.prefix.len() == GRPC_PREFIX {
                let length = u64::from((&self.prefix[1..]).get_u32());
                let declared = (length + GRPC_PREFIX as u64).min(self.limits.max_bytes);
                self.reserve_up_to(declared)?;
            }
        }
        self.received += data.len() as u64;
        self.window_bytes += data.len() as u64;
        if let Some(progress) = &self.progress {
            progress.last_ms.store(self.limits.budget.now_ms(), Ordering::Relaxed);
        }
        self.reserve_up_to(self.received)
    }

    /// Whether the body kept up with the rate floor in every window that has ended; a body that
    /// brought nothing in its first window fails as not started.
    fn kept_up(&mut self, cx: &mut Context<'_>) -> Result<(), BodyError> {
        let window_minimum = self.limits.min_rate as f64 * self.limits.window.as_secs_f64();
        while self.deadline.as_mut().poll(cx).is_ready() {
            if self.received == 0 {
                return Err(BodyError::NotStarted);
            }
            if (self.window_bytes as f64) < window_minimum {
                return Err(BodyError::TooSlow);
            }
            self.window_bytes = 0;
            let next = self.deadline.deadline() + self.limits.window;
            self.deadline.as_mut().reset(next.max(Instant::now()));
        }
        Ok(())
    }
}

impl<B> Metered<B> {
    /// Whether the budget gave this body up as stalled; otherwise the body is woken if it is.
    fn given_up(&self, cx: &Context<'_>) -> bool {
        let Some(progress) = &self.progress else { return false };
        if progress.given_up.load(Ordering::Acquire) {
            return true;
        }
        *lock(&progress.waker) = Some(cx.waker().clone());
        // Given up between the check and the waker being stored: nobody will wake it.
        progress.given_up.load(Ordering::Acquire)
    }

    /// A body too slow closes its connection; one not started is refused on its own.
    fn fail(&self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if matches!(error, BodyError::TooSlow) {
            self.connection.close(CloseReason::BodyTimeout);
        }
        Poll::Ready(Some(Err(error)))
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        self.limits.budget.release(self.reserved);
        if let Some(progress) = &self.progress {
            self.limits.budget.forget(progress);
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            this.progress = Some(this.limits.budget.register());
            let now = Instant::now();
            this.deadline.as_mut().reset(now + this.limits.window);
            if let Some(declared) = this.inner.size_hint().exact() {
                this.reserve_up_to(declared.min(this.limits.max_bytes))?;
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.arrived(data)?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(BodyError::Read(error.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.given_up(cx) => this.fail(BodyError::TooSlow),
            Poll::Pending => match this.kept_up(cx) {
                Ok(()) => Poll::Pending,
                Err(error) => this.fail(error),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::connection::Table;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

    fn limits(budget: u64) -> BodyLimits {
        BodyLimits {
            budget: Budget::new(budget),
            max_bytes: 1 << 20,
            window: Duration::from_secs(10),
            min_rate: 100,
        }
    }

    fn body(
        limits: &BodyLimits,
        grpc: bool,
    ) -> (mpsc::Sender<Chunk>, Metered<StreamBody<ReceiverStream<Chunk>>>) {
        let (send, receive) = mpsc::channel(16);
        let connection = Table::new(8).admit().expect("room");
        (send, Metered::new(StreamBody::new(ReceiverStream::new(receive)), limits.clone(), connection, grpc))
    }

    fn frame(bytes: &[u8]) -> Chunk {
        Ok(Frame::data(Bytes::copy_from_slice(bytes)))
    }

    #[tokio::test]
    async fn bytes_are_reserved_as_they_arrive_and_released_after() {
        let limits = limits(1000);
        let (send, mut metered) = body(&limits, false);
        send.send(frame(&[0; 600])).await.expect("send");
        metered.frame().await.expect("a frame").expect("fits");
        assert_eq!(limits.budget.used(), 600);
        let (other_send, mut other) = body(&limits, false);
        other_send.send(frame(&[0; 500])).await.expect("send");
        assert!(matches!(other.frame().await, Some(Err(BodyError::OverBudget))), "600 + 500 > 1000");
        drop((metered, other));
        assert_eq!(limits.budget.used(), 0);
    }

    #[tokio::test]
    async fn a_grpc_length_prefix_reserves_the_whole_message_at_once() {
        let limits = limits(1000);
        let (send, mut metered) = body(&limits, true);
        send.send(frame(&[0, 0, 0])).await.expect("send");
        metered.frame().await.expect("a frame").expect("fits");
        send.send(frame(&[3, 0xe8, 1])).await.expect("send"); // length 1000: 1005 with the prefix
        assert!(matches!(metered.frame().await, Some(Err(BodyError::OverBudget))));
    }

    #[tokio::test]
    async fn a_stalled_body_is_given_up_when_the_budget_runs_out() {
        let limits = limits(1000);
        let (stalled_send, mut stalled) = body(&limits, false);
        stalled_send.send(frame(&[0; 900])).await.expect("send");
        stalled.frame().await.expect("a frame").expect("fits");
        let waiting =
            tokio::spawn(async move { (stalled.frame().await.map(|frame| frame.is_err()), stalled) });
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(100)).await;
        let (send, mut fresh) = body(&limits, false);
        send.send(frame(&[0; 500])).await.expect("send");
        assert!(matches!(fresh.frame().await, Some(Err(BodyError::OverBudget))), "refused, retryably");
        let (failed, stalled) = waiting.await.expect("the stalled body's task");
        assert_eq!(failed, Some(true), "the stalled body fails");
        assert_eq!(stalled.connection.reason(), Some(CloseReason::BodyTimeout));
        drop((stalled, fresh));
        assert_eq!(limits.budget.used(), 0, "its bytes are free for the retry");
        drop(stalled_send);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_below_the_rate_floor_fails_and_closes_its_connection() {
        let limits = limits(1 << 20);
        let (send, mut metered) = body(&limits, false);
        // 2 000 bytes in the first 10 s window (floor: 1 000), then nothing.
        send.send(frame(&[0; 2000])).await.expect("send");
        metered.frame().await.expect("a frame").expect("fits");
        let started = Instant::now();
        assert!(matches!(metered.frame().await, Some(Err(BodyError::TooSlow))));
        assert_eq!(started.elapsed(), Duration::from_secs(20), "the second window brought nothing");
        assert_eq!(metered.connection.reason(), Some(CloseReason::BodyTimeout));
        drop(send);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_started_is_refused_alone() {
        let limits = limits(1 << 20);
        let (send, mut metered) = body(&limits, true);
        let waiting = tokio::spawn(async move { (metered.frame().await, metered) });
        tokio::time::sleep(Duration::from_secs(11)).await;
        let (answer, metered) = waiting.await.expect("the body's task");
        assert!(matches!(answer, Some(Err(BodyError::NotStarted))), "{answer:?}");
        assert_eq!(metered.connection.reason(), None, "the connection is kept for its other requests");
        drop(metered);
        assert_eq!(limits.budget.used(), 0);
        drop(send);
    }
}
