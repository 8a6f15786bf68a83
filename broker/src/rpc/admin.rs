//! The Admin gRPC service: describe and change the cluster through any broker, and watch
//! it. A request a broker forwarded is done by this broker's controller only if the
//! sender is a live broker in the epoch it claims and addressed this controller's term;
//! anything else changes nothing and is counted.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::about::BrokerAbout;
use super::convert;
use super::proto::admin_server::Admin;
use super::proto::{self, Forwarded};
use super::watch;
use crate::controller::service::ControllerService;
use crate::controller::{AdminError, Controller};
use crate::metadata::cache::{MetadataCache, MetadataImage};

/// How long a write waits for this broker to reflect it before answering anyway.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Refused forwarded requests, by reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct RefusedForwards {
    pub stale_broker: AtomicU64,
    pub stale_controller: AtomicU64,
    /// Above `admin.max.message.bytes` (counted on the way out, see `refusals`).
    pub oversized: Arc<AtomicU64>,
}

#[derive(Debug)]
pub struct AdminService {
    cache: Arc<MetadataCache>,
    controller: Arc<Controller>,
    admin: Arc<dyn ControllerService>,
    about: Arc<BrokerAbout>,
    pub refused: Arc<RefusedForwards>,
    /// The broker's stop signal: watch streams end with it (tonic runs each connection
    /// as a task of its own, which stopping the server does not end).
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl AdminService {
    pub fn new(
        cache: Arc<MetadataCache>,
        controller: Arc<Controller>,
        admin: Arc<dyn ControllerService>,
        about: Arc<BrokerAbout>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> AdminService {
        AdminService {
            cache,
            controller,
            admin,
            about,
            refused: Arc::new(RefusedForwards::default()),
            shutdown,
        }
    }

    /// Checks a forward: the sender is registered in the epoch it claims, and it was
    /// addressed to the term this broker's controller is in.
    fn check_forward(&self, forwarded: &Forwarded) -> Result<(), Status> {
        // The raw image, as the controller uses: a controller still recovering its logs
        // must not refuse every forward for the senders its applied image lacks.
        let image = self.cache.raw_image();
        let sender_live = image
            .brokers
            .get(&forwarded.broker_id)
            .is_some_and(|b| b.epoch == forwarded.broker_epoch);
        if !sender_live {
            self.refused.stale_broker.fetch_add(1, Ordering::Relaxed);
            return Err(Status::failed_precondition(format!(
                "forward from broker {} in epoch {}, which is not a live registration",
                forwarded.broker_id, forwarded.broker_epoch
            )));
        }
        if self.controller.current_epoch() != Some(forwarded.controller_epoch) {
            self.refused
                .stale_controller
                .fetch_add(1, Ordering::Relaxed);
            return Err(Status::failed_precondition(format!(
                "forward addressed to controller epoch {}, but this broker's controller is not in that term",
                forwarded.controller_epoch
            )));
        }
        Ok(())
    }
}

fn outcome<T>(result: &Result<T, AdminError>) -> proto::Outcome {
    match result {
        Ok(_) => proto::Outcome::default(),
        Err(err) => {
            let (code, message) = crate::handlers::errors::admin(err);
            proto::Outcome {
                error_code: i32::from(code),
                error_message: message,
            }
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<proto::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn describe_cluster(
        &self,
        _request: Request<proto::DescribeClusterRequest>,
    ) -> Result<Response<proto::DescribeClusterResponse>, Status> {
        let image = self.cache.image();
        let (controller_id, controller_epoch) = image.controller.unwrap_or((-1, 0));
        Ok(Response::new(proto::DescribeClusterResponse {
            cluster_id: image.cluster_id.clone().unwrap_or_default(),
            controller_id,
            controller_epoch,
            brokers: image
                .brokers
                .iter()
                .map(|(id, live)| watch::broker(*id, live))
                .collect(),
            revision: image.revision,
        }))
    }

    async fn describe_topics(
        &self,
        request: Request<proto::DescribeTopicsRequest>,
    ) -> Result<Response<proto::DescribeTopicsResponse>, Status> {
        let image = self.cache.image();
        // Each name once: a request naming one big topic a million times must not make
        // a million descriptions of it.
        let names: std::collections::BTreeSet<String> = if request.get_ref().names.is_empty() {
            image.topics.keys().cloned().collect()
        } else {
            request.into_inner().names.into_iter().collect()
        };
        let mut topics = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match describe_topic(&image, &name) {
                Some(topic) => topics.push(topic),
                None => missing.push(name),
            }
        }
        Ok(Response::new(proto::DescribeTopicsResponse {
            topics,
            missing,
            revision: image.revision,
        }))
    }

    async fn create_topics(
        &self,
        request: Request<proto::CreateTopicsRequest>,
    ) -> Result<Response<proto::CreateTopicsResponse>, Status> {
        let request = request.into_inner();
        let specs = request
            .topics
            .iter()
            .map(convert::topic_spec)
            .collect::<Result<Vec<_>, Status>>()?;
        let (outcomes, revision) = match &request.forwarded {
            Some(forwarded) => {
                self.check_forward(forwarded)?;
                self.controller
                    .create_topics(specs, request.validate_only)
                    .await
            }
            None => {
                let (outcomes, _) = self
                    .admin
                    .create_topics(specs, request.validate_only, CATCH_UP)
                    .await;
                (outcomes, self.cache.image().revision)
            }
        };
        let topics = outcomes
            .iter()
            .map(|(name, result)| proto::TopicOutcome {
                name: name.clone(),
                outcome: Some(outcome(result)),
                topic: result.as_ref().ok().map(|r| convert::topic_record(name, r)),
            })
            .collect();
        Ok(Response::new(proto::CreateTopicsResponse {
            topics,
            revision,
        }))
    }

    async fn delete_topics(
        &self,
        request: Request<proto::DeleteTopicsRequest>,
    ) -> Result<Response<proto::DeleteTopicsResponse>, Status> {
        let request = request.into_inner();
        let (outcomes, revision) = match &request.forwarded {
            Some(forwarded) => {
                self.check_forward(forwarded)?;
                self.controller.delete_topics(request.names).await
            }
            None => {
                let (outcomes, _) = self.admin.delete_topics(request.names, CATCH_UP).await;
                (outcomes, self.cache.image().revision)
            }
        };
        let topics = outcomes
            .iter()
            .map(|(name, result)| proto::TopicOutcome {
                name: name.clone(),
                outcome: Some(outcome(result)),
                topic: None,
            })
            .collect();
        Ok(Response::new(proto::DeleteTopicsResponse {
            topics,
            revision,
        }))
    }

    async fn create_partitions(
        &self,
        request: Request<proto::CreatePartitionsRequest>,
    ) -> Result<Response<proto::CreatePartitionsResponse>, Status> {
        let request = request.into_inner();
        let assignments = convert::assignments(&request.assignments);
        let result = match &request.forwarded {
            Some(forwarded) => {
                self.check_forward(forwarded)?;
                self.controller
                    .create_partitions(
                        &request.topic,
                        request.count,
                        assignments,
                        request.validate_only,
                    )
                    .await
            }
            None => self
                .admin
                .create_partitions(
                    &request.topic,
                    request.count,
                    assignments,
                    request.validate_only,
                    CATCH_UP,
                )
                .await
                .map(|_| self.cache.image().revision),
        };
        Ok(Response::new(proto::CreatePartitionsResponse {
            outcome: Some(outcome(&result)),
            revision: result.unwrap_or_default(),
        }))
    }

    async fn alter_configs(
        &self,
        request: Request<proto::AlterConfigsRequest>,
    ) -> Result<Response<proto::AlterConfigsResponse>, Status> {
        let request = request.into_inner();
        let (resource, change) = convert::config_change(&request)?;
        let result = match &request.forwarded {
            Some(forwarded) => {
                self.check_forward(forwarded)?;
                self.controller
                    .alter_configs(&resource, &change, request.validate_only)
                    .await
            }
            None => self
                .admin
                .alter_configs(&resource, &change, request.validate_only, CATCH_UP)
                .await
                .map(|_| self.cache.image().revision),
        };
        Ok(Response::new(proto::AlterConfigsResponse {
            outcome: Some(outcome(&result)),
            revision: result.unwrap_or_default(),
        }))
    }

    type WatchStream = WatchStream;

    async fn describe_broker(
        &self,
        _request: Request<proto::DescribeBrokerRequest>,
    ) -> Result<Response<proto::DescribeBrokerResponse>, Status> {
        Ok(Response::new(self.about.describe()))
    }

    async fn watch(
        &self,
        _request: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let cache = self.cache.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut changes = cache.subscribe();
            let mut last = cache.image();
            if tx.send(Ok(watch::snapshot(&last))).await.is_err() {
                return;
            }
            loop {
                // A watcher that went away ends its task now, not at the next change.
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                    () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                        let _ = tx
                            .send(Err(Status::unavailable("the broker is shutting down")))
                            .await;
                        return;
                    }
                }
                let image = cache.image();
                if let Some(event) = watch::changes(&last, &image) {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                last = image;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A topic with its partitions, as the image shows it.
fn describe_topic(image: &MetadataImage, name: &str) -> Option<proto::Topic> {
    let record = image.topic(name)?;
    let mut topic = convert::topic_record(name, record);
    topic.partition_states = image
        .topic_partitions(name)
        .map(|(index, p)| watch::partition(image, name, index, p))
        .collect();
    Some(topic)
}
