//! The messages Hearth sends, each as plain text and HTML from one template. Values are
//! escaped for HTML; codes and links appear verbatim in the text part.

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, paragraphs: &[String]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n",
        escape(title)
    );
    for paragraph in paragraphs {
        html.push_str("<p>");
        html.push_str(paragraph);
        html.push_str("</p>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// The password-reset message carrying `code`, valid `minutes`.
pub fn password_reset(username: &str, code: &str, minutes: u64) -> Rendered {
    let subject = "Reset your Hearth password".to_owned();
    let text = format!(
        "Hello {username},\n\nSomeone asked to reset the password of your account. To choose a \
         new one, send this code with your new password to \
         POST /v1/auth/password-reset/confirm:\n\n    {code}\n\nIt works once, for {minutes} \
         minutes. If you did not ask, ignore this message: your password has not changed.\n"
    );
    let html = page(
        &subject,
        &[
            format!("Hello {},", escape(username)),
            "Someone asked to reset the password of your account. To choose a new one, send \
             this code with your new password to <code>POST /v1/auth/password-reset/confirm</code>:"
                .to_owned(),
            format!("<code>{}</code>", escape(code)),
            format!(
                "It works once, for {minutes} minutes. If you did not ask, ignore this message: \
                 your password has not changed."
            ),
        ],
    );
    Rendered {
        subject,
        text,
        html,
    }
}

/// The welcome message with the link that verifies the address (`link` carries the token).
pub fn welcome(username: &str, link: &str) -> Rendered {
    let subject = "Welcome to Hearth: verify your e-mail address".to_owned();
    let text = format!(
        "Hello {username},\n\nWelcome to Hearth. To verify this e-mail address, open this link:\n\n    \
         {link}\n\n(or send its token to POST /v1/auth/verify-email). If you did not create an \
         account, ignore this message.\n"
    );
    let html = page(
        &subject,
        &[
            format!("Hello {},", escape(username)),
            format!(
                "Welcome to Hearth. To verify this e-mail address, \
                 <a href=\"{link}\">open this link</a>.",
                link = escape(link)
            ),
            "If you did not create an account, ignore this message.".to_owned(),
        ],
    );
    Rendered {
        subject,
        text,
        html,
    }
}

/// The alert sent when an account logs in from an address it has not used before.
pub fn login_alert(username: &str, address: &str, when: &str) -> Rendered {
    let subject = "New sign-in to your Hearth account".to_owned();
    let text = format!(
        "Hello {username},\n\nYour account was signed in to from a new address:\n\n    \
         address: {address}\n    time: {when}\n\nIf this was you, there is nothing to do. If \
         not, change your password now: it also ends every session.\n"
    );
    let html = page(
        &subject,
        &[
            format!("Hello {},", escape(username)),
            "Your account was signed in to from a new address:".to_owned(),
            format!(
                "address: <code>{}</code><br>time: {}",
                escape(address),
                escape(when)
            ),
            "If this was you, there is nothing to do. If not, change your password now: it also \
             ends every session."
                .to_owned(),
        ],
    );
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_html_and_verbatim_in_text() {
        let mail = password_reset("<b>eve</b>", "CODE-123", 30);
        assert!(mail.text.contains("Hello <b>eve</b>,"));
        assert!(mail.text.contains("    CODE-123\n"));
        assert!(mail.html.contains("Hello &lt;b&gt;eve&lt;/b&gt;,"));
        assert!(!mail.html.contains("<b>eve"));
        assert!(mail.html.contains("<code>CODE-123</code>"));
        assert!(mail.text.contains("30 minutes"));
    }

    #[test]
    fn the_welcome_link_and_the_alert_address_are_escaped_in_html() {
        let mail = welcome("ann", "http://h/verify-email?token=ab&x=\"y\"");
        assert!(
            mail.text
                .contains("    http://h/verify-email?token=ab&x=\"y\"\n")
        );
        assert!(
            mail.html
                .contains("href=\"http://h/verify-email?token=ab&amp;x=&quot;y&quot;\"")
        );
        let alert = login_alert("ann", "<203.0.113.9>", "2026-12-05T07:00:00Z");
        assert!(alert.text.contains("address: <203.0.113.9>"));
        assert!(alert.html.contains("&lt;203.0.113.9&gt;"));
    }
}
