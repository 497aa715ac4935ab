//! Opening connections (shared by subscriber, publisher and topology).

use lapin::options::ConfirmSelectOptions;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::RabbitConfig;
use crate::error::{timeout, RabbitError};

/// Connects to the broker within `connect_timeout`, naming the connection
/// `<connection_name>-<role>`. The error names host, port and vhost, never the password.
///
/// Over `amqps://` the server's certificate must chain to the platform's roots or to the
/// `tls_ca_file`; a certificate that does not fails the handshake (no retry here: the
/// caller's reconnect loop, or start-up, reports it).
pub(crate) async fn connect(config: &RabbitConfig, role: &str) -> Result<Connection, RabbitError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{}-{role}", config.connection_name).into());
    let doing = format!(
        "connecting to {}:{} (vhost `{}`)",
        config.host, config.port, config.vhost
    );
    timeout(config.connect_timeout, &doing, async {
        let runtime =
            lapin::runtime::default_runtime().map_err(|e| RabbitError::amqp(doing.clone(), e))?;
        Connection::connect_uri_with_config(
            config.amqp_uri(),
            properties,
            tls_config(config)?,
            runtime,
        )
        .await
        .map_err(|e| RabbitError::amqp(doing.clone(), e))
    })
    .await
}

/// A new channel of `connection`.
pub(crate) async fn channel(connection: &Connection) -> Result<Channel, RabbitError> {
    connection
        .create_channel()
        .await
        .map_err(|e| RabbitError::amqp("opening a channel", e))
}

/// A new channel of `connection` in confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection) -> Result<Channel, RabbitError> {
    let channel = channel(connection).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| RabbitError::amqp("enabling publisher confirms", e))?;
    Ok(channel)
}

/// The TLS settings of a connection: the `tls_ca_file`'s certificates, if any
/// (`validate` allows the option only with `amqps://`). Read at every connect, so a
/// rotated CA file is picked up by the next reconnect.
fn tls_config(config: &RabbitConfig) -> Result<OwnedTLSConfig, RabbitError> {
    let cert_chain = config
        .tls_ca_file
        .as_deref()
        .map(crate::config::read_ca_file)
        .transpose()
        .map_err(|e| RabbitError::Tls(e.to_string()))?;
    Ok(OwnedTLSConfig {
        identity: None,
        cert_chain,
    })
}
