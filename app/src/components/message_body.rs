//! A message's text as people read it: paragraphs with bold, italic, inline code and links, code
//! blocks, and a message of only a few emoji shown large. Built from [`crate::text::format`]; every
//! piece is escaped text, never HTML from the message.

use leptos::prelude::*;

use crate::text::{Block, Inline, emoji_only, format};

/// The body of one message. It depends on nothing but `body`, so the server's render and the
/// browser's are the same and hydrate cleanly. Paragraphs are `<p class="body">` (with
/// `emoji-only` added when the message is just one to three emoji); code blocks are
/// `<pre class="code-block"><code>`; links open in a new tab.
#[component]
pub fn MessageBody(body: String) -> impl IntoView {
    let large = emoji_only(&body);
    format(&body)
        .into_iter()
        .map(|block| match block {
            Block::Paragraph(inlines) => view! {
                <p class="body" class:emoji-only=large>
                    {inlines_view(inlines)}
                </p>
            }
            .into_any(),
            // Focusable, so a long line can be scrolled sideways from the keyboard.
            Block::CodeBlock(code) => view! {
                <pre class="code-block" tabindex="0">
                    <code>{code.to_owned()}</code>
                </pre>
            }
            .into_any(),
        })
        .collect_view()
}

/// The pieces of a paragraph. Formatting nests at most two deep (bold and italic), so the
/// recursion is shallow whatever the message.
fn inlines_view(inlines: Vec<Inline<'_>>) -> Vec<AnyView> {
    inlines
        .into_iter()
        .map(|inline| match inline {
            Inline::Text(text) => text.to_owned().into_any(),
            Inline::Bold(inner) => view! { <strong>{inlines_view(inner)}</strong> }.into_any(),
            Inline::Italic(inner) => view! { <em>{inlines_view(inner)}</em> }.into_any(),
            Inline::Code(code) => view! { <code class="inline-code">{code.to_owned()}</code> }.into_any(),
            Inline::Link(url) => view! {
                <a href=url.to_owned() target="_blank" rel="noopener noreferrer">
                    {url.to_owned()}
                </a>
            }
            .into_any(),
        })
        .collect()
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use leptos::prelude::*;

    use super::MessageBody;

    /// The server's HTML for a body, without the markers hydration uses between text nodes.
    fn html(body: &str) -> String {
        let body = body.to_owned();
        Owner::new().with(|| view! { <MessageBody body /> }.to_html()).replace("<!>", "")
    }

    #[test]
    fn formatting_becomes_elements_and_text_stays_escaped() {
        assert_eq!(
            html("*hi* _you_ `a<b>` <script>x</script> https://a.b/c_d"),
            "<p class=\"body\"><strong>hi</strong> <em>you</em> <code class=\"inline-code\">a&lt;b&gt;</code> \
             &lt;script&gt;x&lt;/script&gt; <a href=\"https://a.b/c_d\" target=\"_blank\" \
             rel=\"noopener noreferrer\">https://a.b/c_d</a></p>"
        );
    }

    #[test]
    fn code_blocks_sit_between_paragraphs() {
        assert_eq!(
            html("look:\n```\nif a < b {}\n```\nok"),
            "<p class=\"body\">look:</p><pre tabindex=\"0\" class=\"code-block\"><code>if a &lt; b {}</code></pre>\
             <p class=\"body\">ok</p>"
        );
    }

    #[test]
    fn a_few_emoji_are_shown_large() {
        assert_eq!(html("👍 🎉"), "<p class=\"body emoji-only\">👍 🎉</p>");
        assert_eq!(html("👍 done"), "<p class=\"body\">👍 done</p>");
    }
}
