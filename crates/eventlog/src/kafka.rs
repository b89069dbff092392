//! The Kafka event log (rdkafka): one topic, key = customer id, value = CloudEvents JSON.
//!
//! * Offsets are Kafka's own offsets: per partition, increasing in append order, `0` for the
//!   first record of a new topic. They are not necessarily contiguous (a topic written by a
//!   transactional producer has gaps), so nothing here assumes `offset + 1` exists.
//! * Producer: `enable.idempotence=true` (hence `acks=all` and ordered retries), lz4
//!   compression by default, a few milliseconds of linger, and `message.timeout.ms` from
//!   [`KafkaConfig::message_timeout`]: librdkafka reports every record within that time, so a
//!   dead broker gives [`LogError::Unavailable`] instead of a hang. The `murmur2_random`
//!   partitioner places keys exactly as the Java client does, so foreign producers keying by
//!   customer id agree with us on the partition.
//! * The topic is created on first use with [`KafkaConfig::partitions`] partitions and
//!   `message.timestamp.type=LogAppendTime` (so a record's timestamp is the broker's accept
//!   time, our `recorded_at`). An existing topic is used as it is; its partition count is logged.
//! * [`EventLog::read`] assigns every partition manually from the caller's positions;
//!   [`EventLog::read_shared`] joins the consumer group [`KafkaConfig::reader_group_id`], so
//!   several processes share the partitions, and at every assignment starts each partition
//!   from the caller's shared positions (nothing is committed to Kafka: the caller's
//!   checkpoints are the positions). Both yield every record, structured or binary CloudEvents
//!   mode (see `cloudevents`), bad ones as [`ReadError::BadRecord`].
//!
//! Duplicates: see the crate documentation.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clientlog_domain::EventId;
use futures::stream::{self, StreamExt};
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use rdkafka::{Message, Offset, TopicPartitionList};
use time::OffsetDateTime;

use crate::cloudevents::{decode_record, STRUCTURED_CONTENT_TYPE};
use crate::error::{BadRecord, LogError, ReadError};
use crate::model::{AppendEvent, AppendOutcome, Position, StoredEvent};
use crate::{EventLog, EventStream, SharedStartOffsets, StartOffsets};

mod starts;
use starts::{Starts, Verdict, STALL};

/// The default topic name.
pub const DEFAULT_TOPIC: &str = "clientlog.events";
/// How much longer than `message_timeout` an append waits for an acknowledgement.
const ACK_SLACK: Duration = Duration::from_secs(1);
/// The default partition count of a topic this log creates.
pub const DEFAULT_PARTITIONS: i32 = 12;

/// How to reach the broker and which topic to use.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    pub topic: String,
    /// Partitions of a topic this log creates (an existing topic keeps its own count).
    pub partitions: i32,
    /// Replication factor of a topic this log creates.
    pub replication_factor: i32,
    /// How long the producer keeps trying to deliver a record before the append fails
    /// (`message.timeout.ms`): the bound on an append against a dead broker.
    pub message_timeout: Duration,
    /// Timeout of metadata, admin and watermark requests.
    pub request_timeout: Duration,
    /// `linger.ms`: how long the producer waits to fill a batch.
    pub linger: Duration,
    /// `compression.type`: `lz4`, `zstd` (needs librdkafka built with zstd), `gzip`, `snappy`
    /// or `none`.
    pub compression: String,
    /// The consumer group [`EventLog::read_shared`] readers join to share the partitions
    /// (they never commit through it: positions are the caller's).
    pub reader_group_id: String,
    /// Further librdkafka settings for every client (security, client.id, tuning).
    pub client_options: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            partitions: DEFAULT_PARTITIONS,
            replication_factor: 1,
            message_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            compression: "lz4".to_string(),
            reader_group_id: "clientlog-eventlog-reader".to_string(),
            client_options: Vec::new(),
        }
    }

    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Where records no reader could decode are published: `<topic>.dead-letters`.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letters", self.topic)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.client_options {
            config.set(key, value);
        }
        config
    }

    /// The producer settings this log relies on (also used by the benchmarks' bare producer,
    /// so both measure the same client).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", millis(self.linger))
            .set("message.timeout.ms", millis(self.message_timeout))
            .set("partitioner", "murmur2_random");
        config
    }

    /// The consumer settings of a reader.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", &self.reader_group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // A start offset outside the partition (retention removed it, or a checkpoint from
            // another topic) re-reads from the earliest record: delivered twice and deduped
            // downstream, rather than skipped.
            .set("auto.offset.reset", "earliest")
            // A reader that decodes and projects is slower than the fetcher: once the prefetch
            // queue is full, librdkafka waits this long before fetching again (1 s by default,
            // which stalled reads for a second at a time).
            .set("fetch.queue.backoff.ms", "10");
        config
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// The Kafka event log. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    producer: FutureProducer,
    config: Arc<KafkaConfig>,
}

fn kafka_err(context: &'static str) -> impl FnOnce(KafkaError) -> LogError {
    move |source| LogError::Kafka { context, source }
}

impl KafkaLog {
    /// Connects, creating the topic if it does not exist.
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        if config.partitions < 1 {
            return Err(LogError::Config(format!(
                "a topic needs at least one partition, not {}",
                config.partitions
            )));
        }
        let producer: FutureProducer = config
            .producer_config()
            .create()
            .map_err(kafka_err("creating the Kafka producer"))?;
        ensure_topic(&config, &producer, &config.topic, config.partitions).await?;
        ensure_topic(&config, &producer, &config.dead_letter_topic(), 1).await?;
        Ok(Self {
            producer,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The topic's current partition count.
    pub async fn partition_count(&self) -> Result<i32, LogError> {
        partition_count(
            &self.producer,
            &self.config.topic,
            self.config.request_timeout,
        )
        .await?
        .ok_or_else(|| LogError::Config(format!("topic {} does not exist", self.config.topic)))
    }

    fn record<'a>(&'a self, event: &'a AppendEvent) -> FutureRecord<'a, str, [u8]> {
        FutureRecord::to(&self.config.topic)
            .key(event.subject().as_str())
            .payload(event.bytes())
            .headers(OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some(STRUCTURED_CONTENT_TYPE),
            }))
    }

    fn delivery_error(&self, source: KafkaError) -> LogError {
        match source {
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => {
                LogError::Unavailable {
                    context: "appending events",
                    timeout: self.config.message_timeout,
                    source: Some(source),
                }
            }
            source => LogError::Kafka {
                context: "appending events",
                source,
            },
        }
    }
}

/// Creates the topic unless it exists; logs the partition count of an existing one.
async fn ensure_topic(
    config: &KafkaConfig,
    producer: &FutureProducer,
    name: &str,
    partitions: i32,
) -> Result<(), LogError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config()
        .create()
        .map_err(kafka_err("creating the Kafka admin client"))?;
    let options = AdminOptions::new()
        .request_timeout(Some(config.request_timeout))
        .operation_timeout(Some(config.request_timeout));
    let topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(config.replication_factor),
    )
    .set("message.timestamp.type", "LogAppendTime");
    let created = tokio::time::timeout(
        config.request_timeout + Duration::from_secs(1),
        admin.create_topics([&topic], &options),
    )
    .await
    .map_err(|_| LogError::Unavailable {
        context: "creating the topic",
        timeout: config.request_timeout,
        source: None,
    })?
    .map_err(|source| match source {
        KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut) => LogError::Unavailable {
            context: "creating the topic",
            timeout: config.request_timeout,
            source: Some(source),
        },
        source => LogError::Kafka {
            context: "creating the topic",
            source,
        },
    })?;
    let mut existed = false;
    for result in created {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions, "created a topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existed = true,
            Err((name, code)) => {
                tracing::error!(topic = %name, %code, "creating a topic failed");
                return Err(LogError::Kafka {
                    context: "creating the topic",
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    // The new topic's partitions show up in metadata shortly after creation.
    let deadline = tokio::time::Instant::now() + config.request_timeout;
    loop {
        if let Some(count) = partition_count(producer, name, config.request_timeout).await? {
            if existed {
                tracing::info!(topic = %name, partitions = count, configured = partitions,
                    "using the existing topic as it is");
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LogError::Unavailable {
                context: "waiting for the topic's partitions",
                timeout: config.request_timeout,
                source: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The partition count of `topic`, `None` if it does not exist (yet). librdkafka's metadata
/// call blocks, so it runs on the blocking pool.
async fn partition_count(
    producer: &FutureProducer,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, LogError> {
    let producer = producer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let metadata = Producer::client(&producer).fetch_metadata(Some(&topic), timeout)?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error() {
            None if !found.partitions().is_empty() => Ok(Some(
                i32::try_from(found.partitions().len()).unwrap_or(i32::MAX),
            )),
            None | Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
            Some(code) => Err(KafkaError::MetadataFetch(code.into())),
        }
    })
    .await?
    .map_err(|source| LogError::Unavailable {
        context: "fetching topic metadata",
        timeout,
        source: Some(source),
    })
}

impl EventLog for KafkaLog {
    async fn append(&self, batch: &[AppendEvent]) -> Result<Vec<AppendOutcome>, LogError> {
        enum Slot {
            Sent(usize),
            DuplicateOf(usize),
        }
        let mut first_of: HashMap<EventId, usize> = HashMap::with_capacity(batch.len());
        let mut slots = Vec::with_capacity(batch.len());
        let mut delivered: Vec<Option<Result<Position, LogError>>> =
            Vec::with_capacity(batch.len());
        let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();

        for (index, event) in batch.iter().enumerate() {
            if let Some(&first) = first_of.get(&event.id()) {
                slots.push(Slot::DuplicateOf(first));
                continue;
            }
            first_of.insert(event.id(), index);
            let sent = delivered.len();
            delivered.push(None);
            slots.push(Slot::Sent(sent));
            let mut record = self.record(event);
            loop {
                match self.producer.send_result(record) {
                    Ok(future) => {
                        pending.push_back((sent, future));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: wait for the oldest record in flight,
                        // which frees room (or times out within message.timeout.ms).
                        record = back;
                        match pending.pop_front() {
                            Some((slot, future)) => {
                                delivered[slot] = Some(self.settle(future).await);
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((source, _)) => return Err(self.delivery_error(source)),
                }
            }
        }
        while let Some((slot, future)) = pending.pop_front() {
            delivered[slot] = Some(self.settle(future).await);
        }

        let mut positions = Vec::with_capacity(delivered.len());
        for result in delivered {
            match result {
                Some(Ok(position)) => positions.push(position),
                Some(Err(err)) => return Err(err),
                None => return Err(LogError::WriterStopped),
            }
        }
        Ok(slots
            .iter()
            .map(|slot| match *slot {
                Slot::Sent(i) => AppendOutcome::Appended(positions[i]),
                Slot::DuplicateOf(first) => match slots[first] {
                    Slot::Sent(i) => AppendOutcome::Duplicate(positions[i]),
                    Slot::DuplicateOf(_) => unreachable!("the first occurrence is always sent"),
                },
            })
            .collect())
    }

    async fn read(&self, from: &StartOffsets) -> Result<EventStream, LogError> {
        let partitions = self.partition_count().await?;
        let context = ReaderContext::new(&self.config.topic, None);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let offset = context.start(partition, from.get(&partition).copied());
            assignment
                .add_partition_offset(&self.config.topic, partition, offset)
                .map_err(kafka_err("building the partition assignment"))?;
        }
        let consumer: StreamConsumer<ReaderContext> = self
            .config
            .consumer_config()
            .create_with_context(context)
            .map_err(kafka_err("creating the Kafka consumer"))?;
        consumer
            .assign(&assignment)
            .map_err(kafka_err("assigning partitions to the reader"))?;
        Ok(record_stream(consumer))
    }

    async fn read_shared(&self, positions: SharedStartOffsets) -> Result<EventStream, LogError> {
        let context = ReaderContext::new(&self.config.topic, Some(positions));
        let consumer: StreamConsumer<ReaderContext> = self
            .config
            .consumer_config()
            .create_with_context(context)
            .map_err(kafka_err("creating the Kafka group consumer"))?;
        consumer
            .subscribe(&[&self.config.topic])
            .map_err(kafka_err("joining the reader group"))?;
        Ok(record_stream(consumer))
    }
    async fn publish_dead_letter(&self, bad: &BadRecord) -> Result<(), LogError> {
        let topic = self.config.dead_letter_topic();
        let (partition, offset) = (
            bad.position.partition.to_string(),
            bad.position.offset.to_string(),
        );
        let reason = bad.reason.to_string();
        let headers = [
            ("clientlog-source-topic", self.config.topic.as_str()),
            ("clientlog-source-partition", partition.as_str()),
            ("clientlog-source-offset", offset.as_str()),
            ("clientlog-reason", reason.as_str()),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let mut record = FutureRecord::<str, [u8]>::to(&topic)
            .payload(&bad.bytes)
            .headers(headers);
        if let Some(key) = &bad.key {
            record = record.key(key.as_str());
        }
        let future = self
            .producer
            .send_result(record)
            .map_err(|(source, _)| self.delivery_error(source))?;
        self.settle(future).await.map(|_| ())
    }

    async fn high_water_marks(&self) -> Result<BTreeMap<i32, i64>, LogError> {
        let partitions = self.partition_count().await?;
        let producer = self.producer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.request_timeout;
        tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    Producer::client(&producer)
                        .fetch_watermarks(&topic, p, timeout)
                        .map(|(_, high)| (p, high))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .await?
        .map_err(|source| LogError::Unavailable {
            context: "fetching high-water marks",
            timeout,
            source: Some(source),
        })
    }

    fn dedupes_on_append(&self) -> bool {
        false
    }

    fn shares_partitions(&self) -> bool {
        true
    }
}

impl KafkaLog {
    /// Waits for one record's acknowledgement. librdkafka reports a record within
    /// `message.timeout.ms` of producing it, except one already in flight to a broker that
    /// died, which it holds until the request times out; the extra bound here keeps the
    /// promise that an append against a dead broker fails in about `message_timeout`.
    async fn settle(&self, future: DeliveryFuture) -> Result<Position, LogError> {
        let timeout = self.config.message_timeout;
        match tokio::time::timeout(timeout + ACK_SLACK, future).await {
            Ok(Ok(Ok(delivery))) => Ok(Position::new(delivery.partition, delivery.offset)),
            Ok(Ok(Err((source, _)))) => Err(self.delivery_error(source)),
            Ok(Err(_canceled)) => Err(LogError::WriterStopped),
            Err(_) => Err(LogError::Unavailable {
                context: "waiting for the broker to acknowledge appended events",
                timeout,
                source: None,
            }),
        }
    }
}

/// A consumer's records as events, bad ones as [`ReadError::BadRecord`]; errors are items.
/// Each started partition's records begin exactly at its start (see [`starts`]).
fn record_stream(consumer: StreamConsumer<ReaderContext>) -> EventStream {
    stream::unfold(consumer, |consumer| async move {
        let item = loop {
            let received = match consumer.recv().now_or_never() {
                Some(received) => received,
                None => {
                    // A rebalance inside `recv` can start partitions: wait at most one STALL.
                    let next_stall = consumer.context().starts().next_stall();
                    let wake = next_stall.unwrap_or_else(|| Instant::now() + STALL);
                    match tokio::time::timeout_at(wake.into(), consumer.recv()).await {
                        Ok(received) => received,
                        Err(_) => {
                            let seeks = consumer.context().starts().stalled(Instant::now());
                            for (partition, from) in seeks {
                                seek(&consumer, partition, from);
                            }
                            continue;
                        }
                    }
                }
            };
            match received {
                Ok(message) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    let verdict =
                        consumer
                            .context()
                            .starts()
                            .check(partition, offset, Instant::now());
                    match verdict {
                        Verdict::Deliver => break stored_event(&message),
                        Verdict::Drop => {}
                        Verdict::SeekTo(from) => {
                            drop(message);
                            seek(&consumer, partition, from);
                        }
                    }
                }
                Err(source) => {
                    // Consumer errors are mostly transient (broker down, rebalancing of
                    // leadership); librdkafka keeps reconnecting. Report and go on, slowly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break Err(ReadError::Log(LogError::Kafka {
                        context: "reading events",
                        source,
                    }));
                }
            }
        };
        Some((item, consumer))
    })
    .boxed()
}

/// Moves a started partition's read back to `from` (see [`starts`]). Zero timeout: librdkafka
/// seeks asynchronously; a failure comes back as a consumer error.
fn seek(consumer: &StreamConsumer<ReaderContext>, partition: i32, from: i64) {
    let topic = consumer.context().topic.as_str();
    if let Err(err) = consumer.seek(topic, partition, Offset::Offset(from), Duration::ZERO) {
        tracing::error!(partition, from, error = %err, "cannot seek back to read a skipped start");
    }
}

/// A reader's consumer context: where each partition starts and, for a group reader, the
/// shared positions every assigned partition starts from.
struct ReaderContext {
    topic: String,
    positions: Option<SharedStartOffsets>,
    starts: Mutex<Starts>,
}

impl ReaderContext {
    fn new(topic: &str, positions: Option<SharedStartOffsets>) -> Self {
        Self {
            topic: topic.to_string(),
            positions,
            starts: Mutex::new(Starts::default()),
        }
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, Starts> {
        self.starts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where `partition` starts: at `next`, checked, or at its beginning.
    fn start(&self, partition: i32, next: Option<i64>) -> Offset {
        match next {
            Some(next) => {
                self.starts().started(partition, next, Instant::now());
                Offset::Offset(next)
            }
            None => {
                self.starts().forget(partition);
                Offset::Beginning
            }
        }
    }
}

impl ClientContext for ReaderContext {}

impl ConsumerContext for ReaderContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(positions) = &self.positions else {
            return;
        };
        let assigned = match rebalance {
            Rebalance::Assign(assigned) => assigned,
            Rebalance::Revoke(revoked) => {
                let partitions = partitions_of(revoked);
                for &partition in &partitions {
                    self.starts().forget(partition);
                }
                tracing::info!(?partitions, "partitions revoked");
                return;
            }
            Rebalance::Error(_) => return,
        };
        let positions = positions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut start = TopicPartitionList::new();
        for partition in partitions_of(assigned) {
            let offset = self.start(partition, positions.get(&partition).copied());
            if let Err(err) = start.add_partition_offset(&self.topic, partition, offset) {
                tracing::error!(partition, error = %err, "cannot start an assigned partition");
            }
        }
        tracing::info!(partitions = ?partitions_of(assigned), "partitions assigned");
        // Re-assigning with explicit offsets inside the rebalance is librdkafka's way to start
        // assigned partitions at positions kept outside Kafka.
        if let Err(err) = consumer.assign(&start) {
            tracing::error!(error = %err, "cannot start the assigned partitions");
        }
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

fn stored_event(message: &BorrowedMessage<'_>) -> Result<StoredEvent, ReadError> {
    let position = Position::new(message.partition(), message.offset());
    let headers: Vec<(&str, Option<&[u8]>)> = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    let decoded = decode_record(message.payload(), headers);
    let recorded_at = message
        .timestamp()
        .to_millis()
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    match decoded.event {
        Ok(event) => Ok(StoredEvent {
            position,
            bytes: decoded.bytes,
            recorded_at,
            mode: decoded.mode,
            event,
        }),
        Err(reason) => {
            let key = message
                .key()
                .and_then(|key| std::str::from_utf8(key).ok())
                .map(str::to_string);
            Err(ReadError::bad_record(position, key, decoded.bytes, reason))
        }
    }
}
