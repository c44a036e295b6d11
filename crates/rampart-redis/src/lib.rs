//! Redis connections from the config's `redis` setting, for every feature that keeps
//! state there (cluster-wide rate limits, the consumer store): one place that reads the
//! URL, the ACL user, the password reference's value and the CA bundle, so the features
//! cannot disagree on how Redis is reached.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A client for a single node or a cluster, not yet connected.
#[derive(Clone)]
pub enum RedisClient {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A connection of either kind; cheap to clone (both multiplex one socket per node).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisClient {
    /// Builds the client; never connects. `password` is the resolved secret reference,
    /// relative file paths are read from `base`.
    pub fn new(
        spec: &rampart_config::RedisSpec,
        password: Option<String>,
        base: &Path,
    ) -> Result<Self, String> {
        let certs = match &spec.ca_file {
            Some(f) => {
                let path = if f.is_absolute() {
                    f.clone()
                } else {
                    base.join(f)
                };
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("cannot read ca_file {}: {}", path.display(), e.kind()))?;
                Some(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                })
            }
            None => None,
        };
        let mut urls = vec![spec.url.clone()];
        urls.extend(spec.nodes.iter().cloned());
        for u in &urls {
            u.as_str()
                .parse::<redis::ConnectionInfo>()
                .map_err(|e| format!("invalid Redis URL: {e}"))?;
        }
        if spec.cluster {
            let mut b = redis::cluster::ClusterClientBuilder::new(urls);
            if let Some(p) = &password {
                b = b.password(p.clone());
            }
            if let Some(u) = &spec.username {
                b = b.username(u.clone());
            }
            if let Some(c) = certs {
                b = b.certs(c);
            }
            return b
                .build()
                .map(|c| RedisClient::Cluster(Box::new(c)))
                .map_err(|e| format!("Redis cluster: {e}"));
        }
        let mut info: redis::ConnectionInfo = spec
            .url
            .as_str()
            .parse()
            .map_err(|e| format!("invalid Redis URL: {e}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(p) = &password {
            settings = settings.set_password(p.clone());
        }
        if let Some(u) = &spec.username {
            settings = settings.set_username(u.clone());
        }
        info = info.set_redis_settings(settings);
        match certs {
            Some(c) => redis::Client::build_with_tls(info, c),
            None => redis::Client::open(info),
        }
        .map(|c| RedisClient::Single(Box::new(c)))
        .map_err(|e| format!("Redis: {e}"))
    }

    /// Builds the client from the config's `redis` setting, resolving its password
    /// reference against `base`; never connects.
    pub fn from_spec(spec: &rampart_config::RedisSpec, base: &Path) -> Result<Self, String> {
        let password = match &spec.password {
            Some(p) => Some(p.resolve(base)?.expose().to_string()),
            None => None,
        };
        Self::new(spec, password, base)
    }

    /// Connects. `response_timeout` bounds each call on a single node (a blocking read
    /// needs a connection of its own, with a timeout longer than its block).
    pub async fn connect(&self, response_timeout: Duration) -> redis::RedisResult<Conn> {
        match self {
            RedisClient::Cluster(c) => Ok(Conn::Cluster(c.get_async_connection().await?)),
            RedisClient::Single(c) => {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(response_timeout.max(Duration::from_millis(200))))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(1);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config((**c).clone(), cfg).await?,
                ))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
