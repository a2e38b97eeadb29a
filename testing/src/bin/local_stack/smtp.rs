//! An SMTP sink speaking just enough plain-text SMTP for Alertmanager's
//! email notifier (Go's net/smtp): EHLO with `AUTH PLAIN LOGIN` and no
//! STARTTLS, any credentials accepted, and every message recorded as an
//! `email` notification. With `--sink-status email=CODE` it answers CODE to
//! DATA and records the attempt with an empty body.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::sink::{Integration, Recorder, Statuses};

const HOST: &str = "telltale-local-stack";
/// A message larger than this is cut off in the record (not refused).
const MAX_RECORDED: usize = 1 << 20;

pub async fn serve(listener: TcpListener, recorder: Arc<Recorder>, statuses: Arc<Statuses>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let recorder = recorder.clone();
        let answer = statuses.get(Integration::Email);
        tokio::spawn(async move {
            if let Err(error) = session(stream, &recorder, answer).await {
                eprintln!("telltale-local-stack: SMTP session ended: {error}");
            }
        });
    }
}

async fn session(
    stream: TcpStream,
    recorder: &Recorder,
    answer: Option<u16>,
) -> std::io::Result<()> {
    // Replies are small and each one is awaited: send them at once.
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut recipients: Vec<String> = Vec::new();
    write
        .write_all(format!("220 {HOST} ESMTP ready\r\n").as_bytes())
        .await?;
    loop {
        let Some(line) = read_line(&mut lines).await? else {
            return Ok(());
        };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => {
                format!("250-{HOST}\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10485760")
            }
            "HELO" => format!("250 {HOST}"),
            "AUTH" => {
                let mut words = line.split_whitespace().skip(1);
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next();
                match (mechanism.as_str(), initial) {
                    ("PLAIN", Some(_)) => {}
                    ("PLAIN", None) => {
                        write.write_all(b"334 \r\n").await?;
                        read_line(&mut lines).await?;
                    }
                    ("LOGIN", _) => {
                        // base64 "Username:" and "Password:", as net/smtp clients expect.
                        if initial.is_none() {
                            write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                            read_line(&mut lines).await?;
                        }
                        write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        read_line(&mut lines).await?;
                    }
                    _ => {
                        write
                            .write_all(b"504 unrecognised authentication mechanism\r\n")
                            .await?;
                        continue;
                    }
                }
                "235 2.7.0 authentication succeeded".into()
            }
            "MAIL" => {
                recipients.clear();
                "250 2.1.0 ok".into()
            }
            "RCPT" => {
                let to = line
                    .split_once(':')
                    .map(|(_, rest)| rest.trim().trim_start_matches('<').trim_end_matches('>'))
                    .unwrap_or("")
                    .to_string();
                recipients.push(to);
                "250 2.1.5 ok".into()
            }
            "DATA" => {
                let path = format!("mailto:{}", recipients.join(","));
                recipients.clear();
                match answer {
                    // Refused at the DATA command itself: Alertmanager 0.25
                    // ignores the reply after the message body, so only a
                    // refusal here counts as a failed notification.
                    Some(status) if status != 250 && status != 354 => {
                        recorder
                            .record(
                                Integration::Email,
                                &path,
                                Value::String(String::new()),
                                status,
                            )
                            .await;
                        format!("{status} 5.3.0 telltale-local-stack refuses mail (--sink-status)")
                    }
                    _ => {
                        write
                            .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                            .await?;
                        let message = read_message(&mut lines).await?;
                        recorder
                            .record(Integration::Email, &path, Value::String(message), 250)
                            .await;
                        "250 2.0.0 queued".into()
                    }
                }
            }
            "RSET" => {
                recipients.clear();
                "250 2.0.0 ok".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "VRFY" => "252 2.1.5 cannot verify".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not implemented".into(),
        };
        // One write per reply: a reply and its CRLF sent apart wait out
        // Nagle's algorithm against the client's delayed ACK (~40 ms each).
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// One line without its line ending; None at end of stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The message after DATA up to the lone `.`, dot-unstuffed, CRLF line endings.
async fn read_message<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<String> {
    let mut message = String::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed inside DATA",
            ));
        };
        if line == "." {
            return Ok(message);
        }
        let line = line
            .strip_prefix('.')
            .filter(|_| line.starts_with(".."))
            .unwrap_or(&line);
        if message.len() < MAX_RECORDED {
            message.push_str(line);
            message.push_str("\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_is_dot_unstuffed_and_ends_at_the_lone_dot() {
        let input: &[u8] = b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n";
        let mut reader = BufReader::new(input);
        let message = read_message(&mut reader).await.unwrap();
        assert_eq!(message, "Subject: x\r\n\r\n.leading dot\r\nbody\r\n");
        assert_eq!(
            read_line(&mut reader).await.unwrap().as_deref(),
            Some("QUIT")
        );
    }
}
