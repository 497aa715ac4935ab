//! Opening connections (shared by subscriber, publisher and topology).

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::RabbitConfig;
use crate::error::{timeout, RabbitError};

/// Connects to the broker within `connect_timeout`, naming the connection
/// `<connection_name>-<role>`. The error names host, port and vhost, never the password.
pub(crate) async fn connect(config: &RabbitConfig, role: &str) -> Result<Connection, RabbitError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{}-{role}", config.connection_name).into());
    let doing = format!(
        "connecting to {}:{} (vhost `{}`)",
        config.host, config.port, config.vhost
    );
    timeout(config.connect_timeout, &doing, async {
        Connection::connect_uri(config.amqp_uri(), properties)
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
