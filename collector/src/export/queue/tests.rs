use super::*;
use crate::metrics::SeriesLimits;
use crate::wire::Span;
use agentrace_semconv::metric;
use prost::Message;

fn forward(spans: u8, stored: Option<StoreAnswer>) -> Forward {
    let span = |n: u8| {
        bytes::Bytes::from(Span { span_id: vec![n + 1; 8].into(), ..Default::default() }.encode_to_vec())
    };
    let scope =
        raw::ScopeSpans { spans: (0..spans).map(span).map(Into::into).collect(), ..Default::default() };
    let request = raw::ExportTraceServiceRequest {
        resource_spans: vec![raw::ResourceSpans { scope_spans: vec![scope], ..Default::default() }],
    };
    Forward { request, spans: usize::from(spans), stored }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new(SeriesLimits::default()))
}

/// The persistent queue's ends, its writer running on a thread as the topology runs it.
fn on_disk(queue: &Arc<DiskQueue>, hard_stop: CancellationToken) -> (QueueSender, QueueReceiver) {
    let (sender, receiver, writer) = self::disk(queue.clone(), registry(), hard_stop);
    std::thread::spawn(move || writer.run());
    (sender, receiver)
}

#[tokio::test(start_paused = true)]
async fn in_memory_requests_within_the_batch_window_go_out_together() {
    let (mut sender, mut receiver, gauge) = memory(registry());
    sender.push(forward(2, None)).await;
    sender.push(forward(3, None)).await;
    assert_eq!(gauge.depth(), 2);
    let started = Instant::now();
    let batch = receiver.next_batch(100).await.expect("a batch");
    assert_eq!(
        (batch.spans, batch.payload.into_resource_spans().map(|resource_spans| resource_spans.len())),
        (5, Some(2)),
        "both requests, one batch"
    );
    assert_eq!(started.elapsed(), BATCH_WINDOW, "it waited the window for more");
    assert_eq!(gauge.depth(), 0);

    sender.push(forward(4, None)).await;
    sender.push(forward(4, None)).await;
    let batch = receiver.next_batch(4).await.expect("a batch");
    assert_eq!(batch.spans, 4, "a full batch goes without waiting for more");
    let late = tokio::spawn(async move {
        tokio::time::sleep(BATCH_WINDOW * 2).await;
        sender.push(forward(1, None)).await;
    });
    assert_eq!(receiver.next_batch(100).await.expect("a batch").spans, 4, "the window closed first");
    late.await.expect("late sender");
    assert_eq!(receiver.next_batch(100).await.expect("a batch").spans, 1);
    assert!(receiver.next_batch(100).await.is_none(), "sender gone, queue empty: the end");
}

#[tokio::test]
async fn unsent_spans_at_the_hard_stop_are_counted_in_memory() {
    let registry = registry();
    let (_sender, receiver, _) = memory(registry.clone());
    receiver.settler().abandon(Receipt::default(), 7);
    assert_eq!(registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["shutdown"]), Some(7.0));
}

#[tokio::test]
async fn on_disk_a_request_is_answered_once_stored_and_leaves_when_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Arc::new(DiskQueue::open(dir.path(), 1 << 20, true).expect("open"));
    let hard_stop = CancellationToken::new();
    let (mut sender, mut receiver) = on_disk(&disk, hard_stop.clone());
    let (stored, on_disk) = StoreAnswer::channel();
    sender.push(forward(3, Some(stored))).await;
    assert_eq!(on_disk.await.expect("answered"), Ok(()));
    let batch = receiver.next_batch(100).await.expect("a batch");
    assert_eq!(batch.spans, 3);
    receiver.settler().abandon(batch.receipt, 3);
    assert_eq!(disk.len(), 1, "abandoned on disk: kept for the next start");
    let batch = receiver.next_batch(100).await.expect("the same batch again");
    receiver.settler().ack(batch.receipt).await;
    assert_eq!(disk.len(), 0, "acknowledged: gone");
    drop(sender);
    assert!(receiver.next_batch(100).await.is_none(), "sender gone, queue empty: the end");
}

#[tokio::test]
async fn on_disk_requests_pushed_together_are_stored_in_order_and_each_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Arc::new(DiskQueue::open(dir.path(), 1 << 20, true).expect("open"));
    let (mut sender, mut receiver) = on_disk(&disk, CancellationToken::new());
    let mut answers = Vec::new();
    for spans in 1..=20 {
        let (stored, on_disk) = StoreAnswer::channel();
        sender.push(forward(spans, Some(stored))).await;
        answers.push(on_disk);
    }
    for answer in answers {
        assert_eq!(answer.await.expect("answered"), Ok(()));
    }
    let order: Vec<usize> =
        disk.oldest(usize::MAX).expect("read").requests.iter().map(|(_, spans)| *spans).collect();
    assert_eq!(order, (1..=20).collect::<Vec<_>>());
    drop(sender);
    assert_eq!(receiver.next_batch(usize::MAX).await.expect("everything").spans, 210);
    assert!(receiver.next_batch(100).await.is_none(), "the writer closed the queue once the sender went");
}

#[tokio::test]
async fn on_disk_batches_in_flight_together_are_distinct_and_an_abandoned_one_is_read_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Arc::new(DiskQueue::open(dir.path(), 1 << 20, false).expect("open"));
    let (mut sender, mut receiver) = on_disk(&disk, CancellationToken::new());
    for spans in [1, 2, 3] {
        sender.push(forward(spans, None)).await;
    }
    let first = receiver.next_batch(1).await.expect("a batch");
    let second = receiver.next_batch(1).await.expect("another batch, while the first is out");
    assert_eq!((first.spans, second.spans), (1, 2), "the oldest first, each once");
    let settler = receiver.settler();
    settler.abandon(first.receipt, 1);
    assert_eq!(receiver.next_batch(1).await.expect("again").spans, 1, "the abandoned batch comes back");
    settler.ack(second.receipt).await;
    assert_eq!(disk.len(), 2);
}

#[tokio::test]
async fn on_disk_the_hard_stop_ends_the_reader_and_leaves_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Arc::new(DiskQueue::open(dir.path(), 1 << 20, true).expect("open"));
    let hard_stop = CancellationToken::new();
    let (mut sender, mut receiver) = on_disk(&disk, hard_stop.clone());
    let (stored, on_disk) = StoreAnswer::channel();
    sender.push(forward(2, Some(stored))).await;
    assert_eq!(on_disk.await.expect("answered"), Ok(()));
    hard_stop.cancel();
    assert!(receiver.next_batch(100).await.is_none());
    assert_eq!(disk.len(), 1);
}

#[tokio::test]
async fn on_disk_a_stored_value_that_cannot_be_read_back_is_counted_once_when_its_batch_leaves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = disk::encode(&forward(2, None).request, 2);
    let torn = disk::encode(&forward(3, None).request, 3);
    let torn = torn.slice(..torn.len() - 1);
    DiskQueue::open(dir.path(), 1 << 20, false).expect("open").append_all(&[good, torn]).expect("append");
    let disk = Arc::new(DiskQueue::open(dir.path(), 1 << 20, false).expect("reopen"));
    let registry = registry();
    let (_sender, mut receiver, _writer) =
        self::disk(disk.clone(), registry.clone(), CancellationToken::new());
    let batch = receiver.next_batch(100).await.expect("a batch");
    assert_eq!(batch.spans, 2, "the readable request only");
    receiver.settler().abandon(batch.receipt, 2);
    let unreadable = || registry.value(metric::SELF_SPANS_DROPPED_TOTAL, &["queue_unreadable"]);
    assert_eq!(unreadable(), None, "abandoned: not yet counted");
    let batch = receiver.next_batch(100).await.expect("read again");
    receiver.settler().ack(batch.receipt).await;
    assert_eq!(unreadable(), Some(3.0), "counted once, when its batch left the queue");
    assert_eq!(disk.len(), 0);
}

#[tokio::test]
async fn on_disk_a_reader_behind_what_memory_holds_reads_disk_and_gets_every_request_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = disk::encode(&forward(5, None).request, 5).len();
    // Memory for three requests: the fourth empties it and the reader has to go to disk.
    let disk = Arc::new(DiskQueue::open_with_memory(dir.path(), 1 << 20, false, one * 3).expect("open"));
    let (mut sender, mut receiver) = on_disk(&disk, CancellationToken::new());
    for _ in 0..10 {
        let (stored, on_disk) = StoreAnswer::channel();
        sender.push(forward(5, Some(stored))).await;
        assert_eq!(on_disk.await.expect("answered"), Ok(()));
    }
    let mut keys = Vec::new();
    while keys.len() < 10 {
        let batch = receiver.next_batch(10).await.expect("a batch");
        assert_eq!(batch.spans, 5 * batch.receipt.keys.len(), "every request whole");
        keys.extend(batch.receipt.keys);
    }
    assert_eq!(keys, (0..10).collect::<Vec<_>>(), "each request once, oldest first");
    let (stored, on_disk) = StoreAnswer::channel();
    sender.push(forward(5, Some(stored))).await;
    assert_eq!(on_disk.await.expect("answered"), Ok(()));
    let batch = receiver.next_batch(10).await.expect("caught up: from memory again");
    assert_eq!(batch.receipt.keys, vec![10]);
    assert_eq!(disk.take_cached(11, 10).map(|stored| stored.requests.len()), Some(0), "memory covers");
}
