//! One lazily connecting gRPC channel per broker address, shared by the calls a broker
//! makes to its peers (forwarding, replication, the console's DescribeBroker). tonic
//! channels reconnect by themselves, so an entry is kept for as long as the process runs.

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::transport::{Channel, Endpoint};

/// Addresses kept at most.
const MAX_ADDRESSES: usize = 1024;

#[derive(Debug, Default)]
pub struct Channels {
    by_address: Mutex<HashMap<String, Channel>>,
}

impl Channels {
    /// The channel to `address` (host:port), made with `configure` the first time.
    pub fn get(
        &self,
        address: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = configure(Endpoint::from_shared(format!("http://{address}"))?).connect_lazy();
        // Addresses of brokers long gone would otherwise pile up; callers hold clones of
        // the channels they use, so starting over closes nothing in use.
        if channels.len() >= MAX_ADDRESSES {
            channels.clear();
        }
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_address_and_bad_addresses_refused() {
        let channels = Channels::default();
        let mut made = 0;
        for _ in 0..3 {
            let got = channels.get("127.0.0.1:1", |e| {
                made += 1;
                e
            });
            assert!(got.is_ok());
        }
        assert_eq!(made, 1, "configured once, then reused");
        assert!(channels.get("not a host:port", |e| e).is_err());
    }
}
