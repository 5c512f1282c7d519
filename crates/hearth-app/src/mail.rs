//! E-mail: the messages Hearth sends ([`templates`]) and how they leave ([`Mailer`]): over
//! SMTP ([`SmtpMailer`], STARTTLS or TLS as the URL says) or, by default, as files a newcomer
//! can open ([`FileMailer`], `./data/mail/<id>.eml`).
//!
//! Nothing here logs a message's body or the SMTP credentials: bodies hold one-time codes.

pub mod templates;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;
use uuid::Uuid;

use crate::settings::EmailSettings;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The outbox id: the `Message-ID`, and the file name of a [`FileMailer`].
    pub id: Uuid,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML alternative.
    pub html: Option<String>,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message or its recipient will never be accepted (a malformed address, a 5xx
    /// reply): retrying cannot help.
    #[error("the message was rejected: {0}")]
    Rejected(String),
    /// The server could not be reached or asked to try later (4xx, timeout): retry.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    ///
    /// # Errors
    /// [`MailError::Rejected`] when it can never be sent, [`MailError::Unavailable`] when a
    /// later attempt may succeed.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;

    /// `"smtp"` or `"file"`.
    fn kind(&self) -> &'static str;
}

/// The mailer the settings describe: SMTP when `email.smtp_url` is set, files otherwise.
///
/// # Errors
/// When the SMTP URL or the sender does not parse.
pub fn from_settings(settings: &EmailSettings) -> Result<Arc<dyn Mailer>, MailError> {
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|_| MailError::Rejected("email.from is not a mailbox".to_owned()))?;
    Ok(match &settings.smtp_url {
        Some(url) => Arc::new(SmtpMailer::new(
            url.expose_secret(),
            from,
            Duration::from_secs(settings.timeout_secs.max(1)),
        )?),
        None => Arc::new(FileMailer::new(settings.dir.clone(), from)),
    })
}

/// Builds the MIME message: plain text, with an HTML alternative when there is one.
fn message(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| MailError::Rejected("the recipient is not an address".to_owned()))?;
    let host = from.email.domain().to_owned();
    let builder = Message::builder()
        .message_id(Some(format!("<{}@{host}>", mail.id)))
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone());
    let built = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(
            SinglePart::builder()
                .header(header::ContentType::TEXT_PLAIN)
                .body(mail.text.clone()),
        ),
    };
    built.map_err(|e| MailError::Rejected(e.to_string()))
}

/// Sends over SMTP: `smtps://` is TLS from the first byte, `smtp://…?tls=required` upgrades
/// with STARTTLS (and refuses a server without it), plain `smtp://` sends in clear (a local
/// relay only; production refuses it).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for `url` (credentials in it), sending as `from`.
    ///
    /// # Errors
    /// [`MailError::Rejected`] when the URL does not parse (the message names no part of it).
    pub fn new(url: &str, from: Mailbox, timeout: Duration) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| MailError::Rejected("email.smtp_url does not parse".to_owned()))?
            .timeout(Some(timeout))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(skip_all, fields(email_id = %mail.id), err)]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = message(&self.from, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // lettre's errors name the server's reply or the I/O failure, never credentials.
            Err(error) if error.is_permanent() => Err(MailError::Rejected(error.to_string())),
            Err(error) => Err(MailError::Unavailable(error.to_string())),
        }
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }
}

/// Writes each message to `<dir>/<id>.eml` (the development default): readable with any mail
/// client or a text editor. Writing the same message again replaces its file.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    /// A mailer writing under `dir`, sending as `from`.
    pub fn new(dir: PathBuf, from: Mailbox) -> Self {
        Self { dir, from }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    #[tracing::instrument(skip_all, fields(email_id = %mail.id), err)]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = message(&self.from, mail)?;
        let unavailable = |e: std::io::Error| MailError::Unavailable(e.to_string());
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(unavailable)?;
        let path = self.dir.join(format!("{}.eml", mail.id));
        // Written beside, then renamed: a reader never sees half a message.
        let partial = self.dir.join(format!(".{}.eml.partial", mail.id));
        tokio::fs::write(&partial, message.formatted())
            .await
            .map_err(unavailable)?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(unavailable)?;
        tracing::info!(path = %path.display(), "e-mail written to a file (no SMTP configured)");
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
