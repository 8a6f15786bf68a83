//! Per-broker facts no Kafka request tells (build, start time, clients' traffic per
//! topic), from each live broker's admin service (DescribeBroker).

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use crate::metadata::cache::MetadataCache;
use crate::rpc::channels::Channels;
use crate::rpc::proto::admin_client::AdminClient;
use crate::rpc::proto::{DescribeBrokerRequest, DescribeBrokerResponse};

#[derive(Debug, thiserror::Error)]
pub enum DescribeBrokerError {
    #[error("broker {0} is not live or has no admin endpoint")]
    NotLive(i32),
    #[error("describing broker {broker} at {address}: {message}")]
    Call {
        broker: i32,
        address: String,
        message: String,
    },
}

#[derive(Debug)]
pub struct Traffic {
    cache: Arc<MetadataCache>,
    timeout: Duration,
    channels: Channels,
}

impl Traffic {
    pub fn new(cache: Arc<MetadataCache>, timeout: Duration) -> Traffic {
        Traffic {
            cache,
            timeout,
            channels: Channels::default(),
        }
    }

    fn channel(&self, broker: i32) -> Result<(String, Channel), DescribeBrokerError> {
        let address = self
            .cache
            .image()
            .brokers
            .get(&broker)
            .and_then(|b| b.registration.admin_endpoint.clone())
            .ok_or(DescribeBrokerError::NotLive(broker))?;
        let channel = self
            .channels
            .get(&address, |e| {
                e.connect_timeout(self.timeout).timeout(self.timeout)
            })
            .map_err(|e| DescribeBrokerError::Call {
                broker,
                address: address.clone(),
                message: format!("bad admin endpoint: {e}"),
            })?;
        Ok((address, channel))
    }

    pub async fn describe(
        &self,
        broker: i32,
    ) -> Result<DescribeBrokerResponse, DescribeBrokerError> {
        let (address, channel) = self.channel(broker)?;
        let mut client = AdminClient::new(channel);
        let call = client.describe_broker(DescribeBrokerRequest {});
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(DescribeBrokerError::Call {
                broker,
                address,
                message: status.message().to_string(),
            }),
            Err(_) => Err(DescribeBrokerError::Call {
                broker,
                address,
                message: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    /// Every live broker's answer (those that answered), concurrently.
    pub async fn describe_all(&self) -> Vec<DescribeBrokerResponse> {
        let brokers: Vec<i32> = self.cache.image().brokers.keys().copied().collect();
        let calls = brokers.iter().map(|b| self.describe(*b));
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(r) => Some(r),
                Err(err) => {
                    tracing::debug!(error = %err, "the console could not describe a broker");
                    None
                }
            })
            .collect()
    }
}
